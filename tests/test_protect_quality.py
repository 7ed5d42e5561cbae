"""PSNR and SSIM against hand computations and a direct window-by-window SSIM reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medforget.protect.quality import gaussian_window, psnr, ssim


def reference_ssim(x: np.ndarray, y: np.ndarray, taps: int = 11, sigma: float = 1.5) -> float:
    """Wang et al. 2004 written out literally: a 2-D Gaussian window at every position where it fits, then the mean."""
    half = taps // 2
    g = np.exp(-((np.arange(taps) - half) ** 2) / (2 * sigma**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    x, y = x.astype(np.float64), y.astype(np.float64)
    values = []
    for i in range(x.shape[0] - taps + 1):
        for j in range(x.shape[1] - taps + 1):
            px, py = x[i : i + taps, j : j + taps], y[i : i + taps, j : j + taps]
            mx, my = (w * px).sum(), (w * py).sum()
            vx, vy = (w * (px - mx) ** 2).sum(), (w * (py - my) ** 2).sum()
            cov = (w * (px - mx) * (py - my)).sum()
            values.append(((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(values))


def noisy(image: np.ndarray, sigma: float, seed: int = 1) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, sigma, image.shape)
    return np.clip(np.rint(image + noise), 0, 255).astype(np.uint8)


def smooth_image(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return (127 + 100 * np.sin(xx / 3.0) * np.cos(yy / 4.0)).astype(np.uint8)


def test_psnr_by_hand() -> None:
    a = np.zeros((4, 4), dtype=np.uint8)
    b = a.copy()
    b[1, 2] = 10  # MSE = 100 / 16
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 * 16 / 100), abs=1e-12)
    assert psnr(a, a) == math.inf


def test_ssim_matches_direct_reference_grey_and_rgb() -> None:
    clean = smooth_image(19, 23)
    assert ssim(clean, noisy(clean, 12)) == pytest.approx(reference_ssim(clean, noisy(clean, 12)), abs=1e-12)
    rgb = np.stack([clean, clean[::-1], 255 - clean], axis=-1)
    other = noisy(rgb, 20)
    expected = np.mean([reference_ssim(rgb[..., c], other[..., c]) for c in range(3)])
    assert ssim(rgb, other) == pytest.approx(expected, abs=1e-12)


def test_small_images_use_the_largest_odd_window_that_fits() -> None:
    clean = smooth_image(8, 9)
    assert ssim(clean, noisy(clean, 10)) == pytest.approx(reference_ssim(clean, noisy(clean, 10), taps=7), abs=1e-12)


def test_constant_images_by_hand() -> None:
    """With no variance, SSIM is the luminance term alone: (2ab + C1) / (a^2 + b^2 + C1)."""
    a, b = np.full((16, 16), 100, np.uint8), np.full((16, 16), 120, np.uint8)
    c1 = (0.01 * 255) ** 2
    assert ssim(a, b) == pytest.approx((2 * 100 * 120 + c1) / (100**2 + 120**2 + c1), abs=1e-12)


@settings(max_examples=25, deadline=None)
@given(st.integers(11, 40), st.integers(11, 40), st.integers(0, 2**32 - 1))
def test_ssim_of_an_image_with_itself_is_one(h: int, w: int, seed: int) -> None:
    image = np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)
    assert ssim(image, image) == pytest.approx(1.0, abs=1e-12)


def test_ssim_and_psnr_fall_as_noise_grows() -> None:
    clean = smooth_image(32, 32)
    levels = [1, 4, 16, 48]
    ssims = [ssim(clean, noisy(clean, s)) for s in levels]
    psnrs = [psnr(clean, noisy(clean, s)) for s in levels]
    assert all(a > b for a, b in zip(ssims, ssims[1:])) and ssims[0] < 1
    assert all(a > b for a, b in zip(psnrs, psnrs[1:]))


def test_window_is_a_normalised_symmetric_gaussian() -> None:
    w = gaussian_window()
    assert len(w) == 11 and w.sum() == pytest.approx(1.0)
    assert np.allclose(w, w[::-1]) and w.argmax() == 5
    assert w[5] / w[6] == pytest.approx(math.exp(1 / (2 * 1.5**2)))


def test_shapes_must_match() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        ssim(np.zeros((12, 12), np.uint8), np.zeros((12, 13), np.uint8))

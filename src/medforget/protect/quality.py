"""How visible a protection is: PSNR and SSIM (Wang et al. 2004) between clean and protected uint8 images."""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import correlate1d

DATA_RANGE = 255.0
K1, K2 = 0.01, 0.03
SIGMA, TAPS = 1.5, 11


def psnr(clean: np.ndarray, protected: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB over all pixels and channels; ``inf`` for identical images."""
    _check_pair(clean, protected)
    return psnr_of(clean.astype(np.float64) - protected.astype(np.float64))


def psnr_of(change: np.ndarray) -> float:
    """PSNR (dB) of an image changed by `change` grey levels; inf for no change."""
    mse = float(np.mean(np.square(change, dtype=np.float64)))
    return math.inf if mse == 0 else 10 * math.log10(DATA_RANGE**2 / mse)


def gaussian_window(taps: int = TAPS, sigma: float = SIGMA) -> np.ndarray:
    """The normalised 1-D Gaussian; SSIM's 2-D window is its outer product (separable)."""
    x = np.arange(taps, dtype=np.float64) - (taps - 1) / 2
    w = np.exp(-(x**2) / (2 * sigma**2))
    return w / w.sum()


def ssim(clean: np.ndarray, protected: np.ndarray) -> float:
    """Mean SSIM over the window positions fully inside the image, averaged over channels.

    "Valid" positions only, as in Wang et al.'s reference code (no padding, no downsampling). Images smaller
    than 11 pixels on a side use the largest odd window that fits, same sigma.
    """
    _check_pair(clean, protected)
    a, b = clean.astype(np.float64), protected.astype(np.float64)
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    side = min(a.shape[0], a.shape[1])
    taps = min(TAPS, side if side % 2 else side - 1)
    window = gaussian_window(taps)
    return float(np.mean([_ssim_map(a[..., c], b[..., c], window).mean() for c in range(a.shape[2])]))


def _ssim_map(x: np.ndarray, y: np.ndarray, window: np.ndarray) -> np.ndarray:
    c1, c2 = (K1 * DATA_RANGE) ** 2, (K2 * DATA_RANGE) ** 2
    mu_x, mu_y = _filter(x, window), _filter(y, window)
    var_x = _filter(x * x, window) - mu_x**2
    var_y = _filter(y * y, window) - mu_y**2
    cov = _filter(x * y, window) - mu_x * mu_y
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))


def _filter(image: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Separable window sum, keeping only positions where the window lies inside the image."""
    r = len(window) // 2
    out = correlate1d(correlate1d(image, window, axis=0, mode="constant"), window, axis=1, mode="constant")
    return out[r : out.shape[0] - r, r : out.shape[1] - r]


def _check_pair(clean: np.ndarray, protected: np.ndarray) -> None:
    if clean.shape != protected.shape:
        raise ValueError(f"image shapes differ: {clean.shape} vs {protected.shape}")

"""Robustness post-processings: size and mode kept, and each one really changes a noisy image."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from medforget.errors import MedforgetError
from medforget.protect.transforms import TRANSFORMS, get_transform


def image(mode: str, size: tuple[int, int] = (37, 29)) -> Image.Image:
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8))


def test_registry_names() -> None:
    assert set(TRANSFORMS) == {"jpeg95", "jpeg75", "jpeg50", "resize0.5", "blur1", "grayscale"}


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_size_and_mode_kept(name: str, mode: str) -> None:
    before = image(mode)
    after = TRANSFORMS[name](before)
    assert after.size == before.size and after.mode == before.mode
    if name != "grayscale" or mode == "RGB":
        assert not np.array_equal(np.asarray(after), np.asarray(before))


def test_stronger_jpeg_changes_more() -> None:
    before = np.asarray(image("L"), dtype=np.float64)
    errors = [
        np.abs(np.asarray(TRANSFORMS[name](image("L")), dtype=np.float64) - before).mean()
        for name in ("jpeg95", "jpeg75", "jpeg50")
    ]
    assert errors[0] < errors[1] < errors[2]


def test_grayscale_is_identity_on_grey_and_equalises_channels_on_rgb() -> None:
    grey = image("L")
    assert np.array_equal(np.asarray(TRANSFORMS["grayscale"](grey)), np.asarray(grey))
    out = np.asarray(TRANSFORMS["grayscale"](image("RGB")))
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])


def test_blur_keeps_a_constant_image_and_the_mean() -> None:
    flat = Image.fromarray(np.full((20, 24), 77, np.uint8))
    assert np.array_equal(np.asarray(TRANSFORMS["blur1"](flat)), np.asarray(flat))
    noisy = np.asarray(image("L"), dtype=np.float64)
    blurred = np.asarray(TRANSFORMS["blur1"](image("L")), dtype=np.float64)
    assert abs(blurred.mean() - noisy.mean()) < 1 and blurred.std() < noisy.std() / 2


def test_resize_round_trip_on_odd_and_tiny_sizes() -> None:
    for size in [(1, 1), (3, 5), (64, 64)]:
        out = TRANSFORMS["resize0.5"](image("RGB", size))
        assert out.size == size and out.mode == "RGB"


def test_unknown_transform_names_the_valid_ones() -> None:
    with pytest.raises(MedforgetError, match="unknown transform 'jpeg10'.*jpeg95"):
        get_transform("jpeg10")
    assert get_transform("blur1") is TRANSFORMS["blur1"]

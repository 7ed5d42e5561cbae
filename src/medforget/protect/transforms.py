"""Post-processings a protected image may meet after release (re-encoding, rescaling, smoothing, colour loss).

A protection is only worth its name if it survives them, so each one is a PIL -> PIL function on L or RGB
images keeping size and mode, applied to protected images before measuring the attack again.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from medforget.errors import MedforgetError

Transform = Callable[[Image.Image], Image.Image]


def jpeg(quality: int) -> Transform:
    """Encode as JPEG at ``quality`` and decode again."""

    def apply(image: Image.Image) -> Image.Image:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality)
        buffer.seek(0)
        return Image.open(buffer).convert(image.mode)

    return apply


def resize_round_trip(factor: float) -> Transform:
    """Downscale by ``factor`` and back to the original size, both bilinear: detail finer than the small size is lost."""

    def apply(image: Image.Image) -> Image.Image:
        small = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
        return image.resize(small, Image.Resampling.BILINEAR).resize(image.size, Image.Resampling.BILINEAR)

    return apply


def gaussian_blur(sigma: float) -> Transform:
    """Exact Gaussian blur (scipy, reflected borders), not PIL's box-blur approximation."""

    def apply(image: Image.Image) -> Image.Image:
        pixels = np.asarray(image, dtype=np.float64)
        sigmas = (sigma, sigma, 0) if pixels.ndim == 3 else sigma
        blurred = gaussian_filter(pixels, sigma=sigmas, mode="reflect")
        return Image.fromarray(np.clip(np.rint(blurred), 0, 255).astype(np.uint8))

    return apply


def grayscale(image: Image.Image) -> Image.Image:
    """Drop colour and come back to the input mode (for a grey image: a round trip through RGB)."""
    if image.mode == "L":
        return image.convert("RGB").convert("L")
    return image.convert("L").convert(image.mode)


TRANSFORMS: dict[str, Transform] = {
    "jpeg95": jpeg(95),
    "jpeg75": jpeg(75),
    "jpeg50": jpeg(50),
    "resize0.5": resize_round_trip(0.5),
    "blur1": gaussian_blur(1.0),
    "grayscale": grayscale,
}


def get_transform(name: str) -> Transform:
    """Look a transform up by name, with the valid names in the error."""
    if name not in TRANSFORMS:
        raise MedforgetError(f"unknown transform {name!r}: expected one of {', '.join(TRANSFORMS)}")
    return TRANSFORMS[name]

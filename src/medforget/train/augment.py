"""Image augmentation shared by the vision warm-up and the training loop."""

from __future__ import annotations

import torch


def random_shift(pixels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Roll each (C, H, W) image of a batch by a few pixels (up to H/16 each way), so identity is not
    learned from exact pixel positions."""
    reach = max(1, pixels.shape[-2] // 16)
    shifts = torch.randint(-reach, reach + 1, (len(pixels), 2), generator=generator)
    out = torch.empty_like(pixels)
    for i in range(len(pixels)):
        out[i] = torch.roll(pixels[i], (int(shifts[i, 0]), int(shifts[i, 1])), dims=(1, 2))
    return out


def augment(batch: dict[str, torch.Tensor], seed: int) -> None:
    """Random shifts and +-10 % gain on LLaVA-style (images, C, H, W) pixels, in place. Other layouts
    (flattened patches) are left as they are."""
    pixels = batch.get("pixel_values")
    if pixels is None or pixels.dim() != 4:
        return
    g = torch.Generator().manual_seed(seed)
    moved = random_shift(pixels, g)
    gains = 1 + (torch.rand(len(pixels), generator=g) - 0.5) * 0.2
    low = pixels.amin()
    batch["pixel_values"] = (moved - low) * gains[:, None, None, None] + low

"""Benchmark rows -> formatted examples, once per run (tokenising in the training loop would cost each epoch)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PIL import Image
from transformers import ProcessorMixin

from medforget.data.formatting import Example, format_example
from medforget.world.storage import Benchmark, ImageCache


def format_rows(
    bench: Benchmark, rows: Sequence[dict], processor: ProcessorMixin, *, prompt_only: bool = False,
    progress: Callable[[int], None] | None = None, images: Callable[[dict], list[Image.Image]] | None = None,
) -> list[Example]:
    """Format every row; each scan is decoded once however many rows show it. `images` replaces the
    benchmark's scans (a row -> its images), e.g. with protected copies."""
    images = images or ImageCache(bench)
    out = []
    for i, row in enumerate(rows):
        out.append(format_example(processor, row, images(row), prompt_only=prompt_only))
        if progress and (i + 1) % 256 == 0:
            progress(256)
    if progress:
        progress(len(rows) % 256)
    return out

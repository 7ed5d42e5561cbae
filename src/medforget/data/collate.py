"""Batch formatted examples for any supported VLM family.

Per-token tensors are padded (right for training, left for generation so every prompt ends at the
same position). Image tensors follow the layout the processor itself gives them (``Example.per_sample``):
flattened over images or patches (LLaVA, PaliGemma and Gemma 3 ``pixel_values`` of shape (images, C, H, W),
LLaVA-OneVision / LLaVA-NeXT (images, patches, C, H, W) with ``image_sizes``, Qwen2-VL patches and
``image_grid_thw``) are concatenated in example order, which is the order the model scatters them into
image tokens, each zero-padded to the largest (patch counts differ between one- and two-image rows);
stacked per sample (Idefics3/SmolVLM ``pixel_values`` (1, images, C, H, W) with ``pixel_attention_mask``,
LLaVA-OneVision's ``batch_num_images``) are zero-padded to the largest stack, and text-only rows get
zeros: padding images those models drop, and 0 images.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from transformers import ProcessorMixin

from medforget.data.formatting import IGNORE_INDEX, Example, FormattingError


def pad_token_id(processor: ProcessorMixin) -> int:
    """The tokenizer's pad id, or EOS for tokenizers without one (padded positions are masked anyway)."""
    tokenizer = processor.tokenizer
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise FormattingError(f"{type(tokenizer).__name__} has neither a pad nor an EOS token to pad with")
    return int(pad)


def collate(
    examples: Sequence[Example],
    *,
    pad_token_id: int,
    padding_side: Literal["left", "right"] = "right",
) -> dict[str, torch.Tensor]:
    """One batch from formatted examples; labels are padded with -100, attention masks with 0."""
    if not examples:
        raise FormattingError("cannot collate an empty list of examples")
    if padding_side not in ("left", "right"):
        raise FormattingError(f"padding_side must be 'left' or 'right', not {padding_side!r}")
    keys = list(examples[0].tokens)
    if any(set(example.tokens) != set(keys) for example in examples):
        raise FormattingError("examples have different inputs (mixing prompt-only and training examples?)")
    fill = {"input_ids": pad_token_id, "labels": IGNORE_INDEX}
    batch = {key: _pad([example.tokens[key] for example in examples], fill.get(key, 0), padding_side) for key in keys}
    batch.update(_merge_vision(examples))
    return batch


def _pad(sequences: list[torch.Tensor], value: int, side: str) -> torch.Tensor:
    width = max(sequence.shape[0] for sequence in sequences)
    out = sequences[0].new_full((len(sequences), width), value)
    for row, sequence in enumerate(sequences):
        if side == "right":
            out[row, : sequence.shape[0]] = sequence
        else:
            out[row, width - sequence.shape[0] :] = sequence
    return out


def _merge_vision(examples: Sequence[Example]) -> dict[str, torch.Tensor]:
    with_images = [example for example in examples if example.vision]
    if not with_images:
        return {}
    per_sample = frozenset().union(*(example.per_sample for example in with_images))
    merged = {}
    for key in sorted({key for example in with_images for key in example.vision}):
        if key in per_sample:
            merged[key] = _zero_padded([example.vision[key][0] if key in example.vision else None for example in examples])
        else:
            merged[key] = _zero_padded([part for example in with_images if key in example.vision for part in example.vision[key]])
    return merged


def _zero_padded(parts: list[torch.Tensor | None]) -> torch.Tensor:
    """Stack `parts` along a new first dimension, each zero-padded to the largest; None gives zeros."""
    present = [part for part in parts if part is not None]
    shape = [max(sizes) for sizes in zip(*(part.shape for part in present))]
    out = present[0].new_zeros((len(parts), *shape))
    for row, part in enumerate(parts):
        if part is not None:
            out[(row, *(slice(0, size) for size in part.shape))] = part
    return out


def collated_batches(examples: Sequence[Example], size: int, pad: int, device: torch.device | None = None) -> list[dict[str, torch.Tensor]]:
    """`examples` in order, as right-padded batches of `size` (the last one shorter), on `device` if given:
    for the passes over a whole set that gradient statistics and activation importance need."""
    batches = [collate(examples[i:i + size], pad_token_id=pad, padding_side="right") for i in range(0, len(examples), size)]
    return batches if device is None else [{k: v.to(device) for k, v in b.items()} for b in batches]

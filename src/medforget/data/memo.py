"""Formatted examples remembered across the stages of one run.

A run formats the same rows again and again: every unlearning method formats the whole retain set, every
evaluation the same prompts, each with the chat template and the image processor (about 2 ms a row on the
embedded default, 6 s per stage on `demo`). Inside `medforget run` each worker process keeps what it
formatted, keyed by what the output depends on: the processor's content (class, settings, chat template,
tokenizer), the row and the images' pixels, so a relabelled row, a protected scan or another model's
processor is a miss. Hits are copies, so no caller can change what the memo holds. It is off elsewhere,
since a one-stage command formats each row once anyway.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image
from transformers import ProcessorMixin

if TYPE_CHECKING:
    from medforget.data.formatting import Example

DEFAULT_MAX_BYTES = 1 << 30  # the whole memo is dropped when its tensors pass this


class FormatMemo:
    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes, self.bytes, self.hits, self.misses = max_bytes, 0, 0, 0
        self.entries: dict[tuple, Example] = {}
        self.vision: dict[tuple, dict[str, torch.Tensor]] = {}  # one copy of a scan's tensors for all its rows
        self.fingerprints: weakref.WeakKeyDictionary[ProcessorMixin, tuple[tuple, str | None]] = weakref.WeakKeyDictionary()

    def key(self, processor: ProcessorMixin, row: Mapping[str, Any], images: Sequence[Image.Image], prompt_only: bool) -> tuple | None:
        seen = _cheap_state(processor)
        if processor not in self.fingerprints or self.fingerprints[processor][0] != seen:
            self.fingerprints[processor] = (seen, processor_fingerprint(processor))  # computed again if it changed
        fingerprint = self.fingerprints[processor][1]
        if fingerprint is None:
            return None
        return fingerprint, _row_digest(row), images_digest(images), prompt_only

    def get(self, key: tuple) -> Example | None:
        example = self.entries.get(key)
        if example is None:
            self.misses += 1
            return None
        self.hits += 1
        return _copy(example)

    def put(self, key: tuple, example: Example) -> None:
        from medforget.data.formatting import Example

        vision_key = (key[0], key[2])
        vision = self.vision.get(vision_key)
        if vision is None or not _same(vision, example.vision):
            vision = {k: v.clone() for k, v in example.vision.items()}
            self.vision.setdefault(vision_key, vision)
            self.bytes += _nbytes(vision)
        tokens = {k: v.clone() for k, v in example.tokens.items()}
        self.bytes += _nbytes(tokens)
        self.entries[key] = Example(tokens=tokens, vision=vision, per_sample=example.per_sample)
        if self.bytes > self.max_bytes:
            self.entries.clear()
            self.vision.clear()
            self.bytes = 0


_ACTIVE: FormatMemo | None = None


def active() -> FormatMemo | None:
    return _ACTIVE


def enable(max_bytes: int = DEFAULT_MAX_BYTES) -> FormatMemo:
    """Turn the memo on for this process (a run's worker); a second call keeps the memo there is."""
    global _ACTIVE
    if _ACTIVE is None:
        _ACTIVE = FormatMemo(max_bytes)
    return _ACTIVE


@contextmanager
def remembering(max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[FormatMemo]:
    """The memo on for a block (a run's stages in this process), and off again after it."""
    global _ACTIVE
    before, _ACTIVE = _ACTIVE, FormatMemo(max_bytes)
    try:
        yield _ACTIVE
    finally:
        _ACTIVE = before


def processor_fingerprint(processor: ProcessorMixin) -> str | None:
    """A digest of everything of the processor that formatting reads; None (never remembered) for a
    tokenizer whose vocabulary cannot be serialised."""
    tokenizer = getattr(processor, "tokenizer", processor)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    try:
        settings = processor.to_json_string() if hasattr(processor, "to_json_string") else ""
    except (TypeError, ValueError):
        return None
    digest = hashlib.blake2b(digest_size=16)
    special = {k: str(v) for k, v in sorted(tokenizer.special_tokens_map.items())}
    for part in (type(processor).__module__, type(processor).__qualname__, settings, getattr(processor, "chat_template", None) or "",
                 _vocabulary(backend), json.dumps(special), tokenizer.padding_side, str(getattr(processor, "model_input_names", ""))):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def _cheap_state(processor: ProcessorMixin) -> tuple:
    """What a caller may plausibly change on a processor in use (its template, added tokens, image settings)."""
    tokenizer = getattr(processor, "tokenizer", processor)
    images = getattr(processor, "image_processor", None)
    return (getattr(processor, "chat_template", None), len(tokenizer), id(images),
            tuple(sorted((k, repr(v)) for k, v in vars(images).items())) if images is not None else ())


def _vocabulary(backend: Any) -> str:
    """The tokenizer's serialised state less its padding and truncation, which each call sets anew."""
    state = json.loads(backend.to_str())
    state.pop("padding", None)
    state.pop("truncation", None)
    return json.dumps(state, sort_keys=True)


def images_digest(images: Sequence[Image.Image]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for image in images:
        digest.update(f"{image.mode}{image.size}".encode())
        digest.update(image.tobytes())
    return digest.hexdigest()


def _row_digest(row: Mapping[str, Any]) -> str:
    return hashlib.blake2b(json.dumps(row, sort_keys=True, default=str).encode(), digest_size=16).hexdigest()


def _copy(example: Example) -> Example:
    from medforget.data.formatting import Example

    return Example(tokens={k: v.clone() for k, v in example.tokens.items()},
                   vision={k: v.clone() for k, v in example.vision.items()}, per_sample=example.per_sample)


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(a[k].shape == b[k].shape and a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)


def _nbytes(tensors: dict[str, torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors.values())

"""Turn one benchmark row and its scans into model inputs, the same way for training, unlearning and evaluation.

The processor's own chat template renders the conversation, so any supported VLM family formats its
images and turns natively. Training inputs are ``prompt + answer``; the prompt is tokenised on its own as
well and must be an exact token prefix of the full text, so the tokens a model is trained on are the very
tokens it later sees before generating. Labels are -100 on the prompt (image tokens included) and keep
the answer and the end-of-turn token(s) the template writes after it.

MCQ targets are the option text itself (e.g. ``"Metformin"``), the very string the evaluator scores each
option by. A letter target ("B. Metformin") would make the model learn a letter lookup over the listed
options, a skill a from-scratch model picks up late (measured on `demo`: option scores then followed the
text prior, not the image), and would tie MCQ knowledge to a format that open questions never use.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from string import ascii_uppercase
from typing import Any

import torch
from PIL import Image
from transformers import ProcessorMixin

from medforget.data import memo
from medforget.errors import MedforgetError

IGNORE_INDEX = -100


class FormattingError(MedforgetError):
    """A row, its images or the processor's chat template cannot be turned into model inputs."""


@dataclass
class Example:
    """One formatted row: per-token tensors (1-D, same length) and the processor's image tensors as returned
    for a batch of one; ``per_sample`` names the image tensors whose first dimension is the batch (the rest
    run over images or patches and are concatenated in a batch, see ``data.collate``)."""

    tokens: dict[str, torch.Tensor]
    vision: dict[str, torch.Tensor] = field(default_factory=dict)
    per_sample: frozenset[str] = frozenset()

    @property
    def length(self) -> int:
        return int(self.tokens["input_ids"].shape[0])


def user_text(row: Mapping[str, Any]) -> str:
    """The question, with MCQ options as lettered lines; cloze questions already hold their ``___``."""
    if row["task"] != "mcq":
        return row["question"]
    lines = [f"{ascii_uppercase[i]}. {option}" for i, option in enumerate(row["options"])]
    return "\n".join([row["question"], *lines])


def answer_text(row: Mapping[str, Any]) -> str:
    """The training target: the answer string (for MCQ, the text of the correct option)."""
    if row["task"] != "mcq":
        return row["answer"]
    index = row["correct_index"]
    if not 0 <= index < len(row["options"]) or row["options"][index] != row["answer"]:
        raise FormattingError(f"row {row['id']}: correct_index {index} does not point at its answer in options")
    return row["answer"]


def conversation(row: Mapping[str, Any], n_images: int, with_answer: bool) -> list[dict[str, Any]]:
    """Chat messages in the processor's content-list format: images first, then the question."""
    content: list[dict[str, Any]] = [{"type": "image"} for _ in range(n_images)]
    content.append({"type": "text", "text": user_text(row)})
    messages = [{"role": "user", "content": content}]
    if with_answer:
        messages.append({"role": "assistant", "content": [{"type": "text", "text": answer_text(row)}]})
    return messages


def format_example(
    processor: ProcessorMixin,
    row: Mapping[str, Any],
    images: Sequence[Image.Image],
    *,
    prompt_only: bool = False,
) -> Example:
    """Model inputs for one row; ``prompt_only`` stops at the assistant generation prompt and has no labels.
    Inside `medforget run` a row formatted before in the same process comes from ``data.memo``."""
    if len(images) != len(row["scan_ids"]):
        raise FormattingError(f"row {row['id']}: {len(row['scan_ids'])} scan_ids but {len(images)} images given")
    if getattr(processor, "chat_template", None) is None:
        raise FormattingError(f"{type(processor).__name__} has no chat template: medforget formats rows through it")
    rgb = [image if image.mode == "RGB" else image.convert("RGB") for image in images]
    remembered = memo.active()
    key = remembered.key(processor, row, rgb, prompt_only) if remembered else None
    if key is not None:
        example = remembered.get(key)
        if example is None:
            example = _format(processor, row, rgb, prompt_only)
            remembered.put(key, example)
        return example
    return _format(processor, row, rgb, prompt_only)


def _format(processor: ProcessorMixin, row: Mapping[str, Any], rgb: list[Image.Image], prompt_only: bool) -> Example:
    prompt = processor.apply_chat_template(conversation(row, len(rgb), False), add_generation_prompt=True)
    prompt_tokens, vision = _encode(processor, prompt, rgb)
    per_sample = per_sample_keys(processor) if vision else frozenset()
    if prompt_only:
        return Example(tokens=prompt_tokens, vision=vision, per_sample=per_sample)
    full = processor.apply_chat_template(conversation(row, len(rgb), True)).rstrip()
    if not full.startswith(prompt):
        raise FormattingError(f"the chat template of {type(processor).__name__} does not extend the prompt with the answer")
    tokens, vision = _encode(processor, full, rgb)
    if marks_suffix(processor):
        tokens = _end_at_eos(tokens, processor.tokenizer.eos_token_id)
    n_prompt = prompt_tokens["input_ids"].shape[0]
    if not torch.equal(tokens["input_ids"][:n_prompt], prompt_tokens["input_ids"]):
        raise FormattingError(
            f"row {row['id']}: the prompt's tokens are not a prefix of prompt+answer tokens; "
            "the chat template must end the generation prompt on a token boundary"
        )
    labels = tokens["input_ids"].clone()
    labels[:n_prompt] = IGNORE_INDEX
    if not (labels != IGNORE_INDEX).any():
        raise FormattingError(f"row {row['id']}: the answer produced no tokens")
    tokens["labels"] = labels
    if marks_suffix(processor):
        tokens["token_type_ids"][n_prompt:] = 1  # the answer is the causal suffix, as the processor's `suffix=` makes it
    return Example(tokens=tokens, vision=vision, per_sample=per_sample)


def answer_token_ids(processor: ProcessorMixin, row: Mapping[str, Any], n_images: int) -> list[int]:
    """The tokens ``format_example`` labels for ``row`` (answer and end of turn), from the text alone.

    The prompt's tokens are a prefix of prompt+answer (``format_example`` checks it), so what follows them
    does not depend on the images: tokenising the two chat texts without running the image processor
    gives the same suffix. (Scoring four options of one question then formats its images once.)"""
    return shared_prompt_answer_ids(processor, [row], n_images)[0]


def shared_prompt_answer_ids(processor: ProcessorMixin, rows: Sequence[Mapping[str, Any]], n_images: int) -> list[list[int]]:
    """``answer_token_ids`` of rows that differ only in their answer (the options of one question): the
    prompt is templated and tokenised once, the answers in one tokenizer call."""
    prompt = processor.apply_chat_template(conversation(rows[0], n_images, False), add_generation_prompt=True)
    fulls = [processor.apply_chat_template(conversation(row, n_images, True)).rstrip() for row in rows]
    tokenizer, bos = processor.tokenizer, processor.tokenizer.bos_token
    add_special_tokens = not (bos and prompt.startswith(bos))
    head = tokenizer(prompt, add_special_tokens=add_special_tokens)["input_ids"]
    out = []
    for row, whole in zip(rows, tokenizer(fulls, add_special_tokens=add_special_tokens)["input_ids"]):
        if whole[: len(head)] != head or len(whole) == len(head):
            raise FormattingError(f"row {row['id']}: the answer does not follow the prompt on a token boundary")
        out.append(whole[len(head):])
    return out


def end_of_turn_ids(processor: ProcessorMixin, row: Mapping[str, Any], n_images: int) -> list[int]:
    """The tokens the chat template writes after the answer (its end of turn), which close the labelled
    tokens of every answer alike; what membership attacks read is the labelled tokens without them. Taken
    from the end of the templated text, so it does not matter where a processor puts the prompt's end
    (PaliGemma's adds the newline that separates prefix and answer itself)."""
    prompt = processor.apply_chat_template(conversation(row, n_images, False), add_generation_prompt=True)
    full = processor.apply_chat_template(conversation(row, n_images, True)).rstrip()
    tokenizer, bos = processor.tokenizer, processor.tokenizer.bos_token
    add_special_tokens = not (bos and prompt.startswith(bos))
    whole, through = tokenizer([full, _through_answer(full, prompt, row)], add_special_tokens=add_special_tokens)["input_ids"]
    if whole[: len(through)] != through:
        raise FormattingError(f"row {row['id']}: the end of turn does not follow the answer on a token boundary")
    return whole[len(through):]


def _through_answer(full: str, prompt: str, row: Mapping[str, Any]) -> str:
    """The templated conversation cut right after the answer text, before the template's end of turn."""
    answer = answer_text(row)
    start = full.find(answer, len(prompt))
    if start < 0:
        raise FormattingError(f"row {row['id']}: the chat template does not write the answer verbatim")
    return full[: start + len(answer)]


def _end_at_eos(tokens: dict[str, torch.Tensor], eos: int | None) -> dict[str, torch.Tensor]:
    """A PaliGemma-style processor ends every text it is given with its prefix separator ("\n"), the answer
    too: what follows the answer's EOS is cut, so that no token after the end of turn is trained or scored."""
    ids = tokens["input_ids"]
    ends = (ids == eos).nonzero().flatten() if eos is not None else ids[:0]
    if not len(ends) or int(ends[-1]) == len(ids) - 1:
        return tokens
    cut = int(ends[-1]) + 1
    return {k: v[:cut] if v.dim() == 1 and len(v) == len(ids) else v for k, v in tokens.items()}


def marks_suffix(processor: ProcessorMixin) -> bool:
    """PaliGemma-style processors: ``token_type_ids`` 0 on the prefix (attended both ways) and 1 on the
    answer, which the processor returns ``labels`` for when given ``suffix=``."""
    return "labels" in processor.model_input_names and "token_type_ids" in processor.model_input_names


_PER_SAMPLE: weakref.WeakKeyDictionary[ProcessorMixin, frozenset[str]] = weakref.WeakKeyDictionary()


def per_sample_keys(processor: ProcessorMixin) -> frozenset[str]:
    """The image tensors the processor stacks per sample (Idefics3's pixel_values, LLaVA-OneVision's
    batch_num_images), read off its own output for two samples of one and two images: their first
    dimension is 2, where per-image tensors (image_sizes, image_grid_thw, most pixel_values) have 3 and
    flattened patches (Qwen2-VL) many more. Computed once per processor."""
    if processor not in _PER_SAMPLE:
        images = [Image.new("RGB", (32, 32), (40 * k, 90, 160)) for k in range(3)]
        rows = [{"id": "probe", "task": "open", "question": "probe", "scan_ids": []}] * 2
        texts = [processor.apply_chat_template(conversation(row, n, False), add_generation_prompt=True)
                 for row, n in zip(rows, (1, 2))]
        encoded = _process(processor, texts, [images[:1], images[1:]])
        vision_keys = set(processor.image_processor.model_input_names)
        _PER_SAMPLE[processor] = frozenset(
            key for key, value in encoded.items() if key in vision_keys and isinstance(value, torch.Tensor) and value.shape[0] == 2
        )
    return _PER_SAMPLE[processor]


def _process(processor: ProcessorMixin, texts: list[str], images: list[list[Image.Image]] | None) -> Mapping[str, Any]:
    """The processor's tensors for a batch of texts with their images (None: text only)."""
    bos = processor.tokenizer.bos_token
    # Like apply_chat_template(tokenize=True): a template that writes BOS itself must not get a second one.
    add_special_tokens = not (bos and texts[0].startswith(bos))
    if images:
        return processor(text=texts, images=images, add_special_tokens=add_special_tokens, padding=True, return_tensors="pt")
    try:
        return processor(text=texts, add_special_tokens=add_special_tokens, padding=True, return_tensors="pt")
    except ValueError:  # a processor that insists on images (PaliGemma's): its tokenizer, with its token types
        wants_types = "token_type_ids" in processor.model_input_names
        return processor.tokenizer(texts, add_special_tokens=add_special_tokens, padding=True,
                                   return_token_type_ids=wants_types, return_tensors="pt")


def _encode(
    processor: ProcessorMixin, text: str, images: list[Image.Image]
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Run the processor on a batch of one; split per-token tensors from the image processor's outputs."""
    encoded = _process(processor, [text], [images] if images else None)
    vision_keys = set(processor.image_processor.model_input_names)
    length = encoded["input_ids"].shape[1]
    tokens: dict[str, torch.Tensor] = {}
    vision: dict[str, torch.Tensor] = {}
    for key, value in encoded.items():
        if key == "labels" and marks_suffix(processor):
            continue  # PaliGemma's processor masks its prefix; format_example labels the answer itself
        if key in vision_keys:
            vision[key] = value
        elif isinstance(value, torch.Tensor) and value.shape == (1, length):
            tokens[key] = value[0]
        else:
            raise FormattingError(f"{type(processor).__name__} returned '{key}', neither per-token nor an image input")
    return tokens, vision

"""Benchmark rows to model inputs and batches: text layout, label masks, padding and image-tensor merging."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import ProcessorMixin

from medforget.data.collate import collate, pad_token_id
from medforget.data.formatting import (
    IGNORE_INDEX,
    Example,
    FormattingError,
    answer_text,
    answer_token_ids,
    end_of_turn_ids,
    format_example,
    user_text,
)
from medforget.models.loading import load_model
from medforget.models.tiny import build_tiny_model


def make_row(**overrides: Any) -> dict[str, Any]:
    """A question row with every column of docs/benchmark.md."""
    row = {
        "id": "privacy.mcq.P0001.0", "patient_id": "P0001", "split": "train", "scenario": "privacy", "task": "open",
        "condition": "image", "question": "What is the name of the patient in this scan?", "answer": "Jane Doe",
        "options": [], "correct_index": -1, "field": "full_name", "is_private": True, "is_incorrect": False,
        "true_answer": "Jane Doe", "template_id": "open.image.full_name.0", "scan_ids": ["S0001"],
    }
    return {**row, **overrides}


MCQ = make_row(task="mcq", question="Which drug treats type 2 diabetes?", options=["Warfarin", "Metformin", "Insulin"],
               correct_index=1, answer="Metformin", true_answer="Metformin", condition="none", scan_ids=[],
               scenario="incorrect", field="drug_indication", is_private=False)
CLOZE = make_row(task="cloze", question="The patient in this scan was born on ___.", answer="4 July 1950",
                 field="date_of_birth")


@pytest.fixture(scope="module")
def processor(tmp_path_factory: pytest.TempPathFactory) -> ProcessorMixin:
    texts = [MCQ["question"], *MCQ["options"], CLOZE["question"], CLOZE["answer"], make_row()["question"]] * 20
    return load_model(build_tiny_model(texts, tmp_path_factory.mktemp("tiny")))[1]


def scans(n: int) -> list[Image.Image]:
    rng = np.random.default_rng(n)
    return [Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)) for _ in range(n)]


def test_mcq_text_lists_lettered_options_and_targets_the_option_text() -> None:
    assert user_text(MCQ) == "Which drug treats type 2 diabetes?\nA. Warfarin\nB. Metformin\nC. Insulin"
    assert answer_text(MCQ) == "Metformin"
    assert user_text(CLOZE) == CLOZE["question"] and answer_text(CLOZE) == "4 July 1950"


def test_mcq_with_inconsistent_correct_index_is_refused() -> None:
    with pytest.raises(FormattingError, match="correct_index"):
        answer_text({**MCQ, "correct_index": 0})


def test_training_example_masks_everything_but_the_answer(processor: ProcessorMixin) -> None:
    example = format_example(processor, CLOZE, scans(1))
    ids, labels = example.tokens["input_ids"], example.tokens["labels"]
    tokenizer = processor.tokenizer
    assert tokenizer.decode(ids[labels != IGNORE_INDEX]) == "4 July 1950</s>"
    assert (labels[ids == processor.image_token_id] == IGNORE_INDEX).all()
    assert example.vision["pixel_values"].shape == (1, 3, 64, 64)
    # grayscale scans become three identical channels
    pixels = example.vision["pixel_values"][0]
    assert torch.equal(pixels[0], pixels[1]) and torch.equal(pixels[1], pixels[2])


def test_answer_token_ids_and_the_end_of_turn(processor: ProcessorMixin) -> None:
    labels = format_example(processor, CLOZE, scans(1)).tokens["labels"]
    labelled = labels[labels != IGNORE_INDEX].tolist()
    assert answer_token_ids(processor, CLOZE, 1) == labelled
    closing = end_of_turn_ids(processor, CLOZE, 1)
    assert len(closing) == 1 and labelled[-1:] == closing
    assert processor.tokenizer.decode(labelled[:-1]) == "4 July 1950"


def test_prompt_only_is_the_prefix_ending_with_the_generation_prompt(processor: ProcessorMixin) -> None:
    prompt = format_example(processor, MCQ, [], prompt_only=True)
    full = format_example(processor, MCQ, [])
    assert "labels" not in prompt.tokens and not prompt.vision
    n = prompt.length
    assert torch.equal(full.tokens["input_ids"][:n], prompt.tokens["input_ids"])
    assert processor.tokenizer.convert_ids_to_tokens(int(prompt.tokens["input_ids"][-1])) == "<|assistant|>"
    assert (full.tokens["labels"][:n] == IGNORE_INDEX).all() and (full.tokens["labels"][n:] != IGNORE_INDEX).all()
    text = processor.tokenizer.decode(prompt.tokens["input_ids"])
    assert text == "<s><|user|>" + user_text(MCQ) + "</s><|assistant|>"


def test_image_count_must_match_scan_ids(processor: ProcessorMixin) -> None:
    with pytest.raises(FormattingError, match="2 scan_ids but 1 images"):
        format_example(processor, make_row(scan_ids=["S1", "S2"]), scans(1))


def test_processor_without_chat_template_is_refused(processor: ProcessorMixin) -> None:
    template = processor.chat_template
    processor.chat_template = None
    try:
        with pytest.raises(FormattingError, match="no chat template"):
            format_example(processor, MCQ, [])
    finally:
        processor.chat_template = template


def test_collate_pads_right_for_training_and_left_for_generation(processor: ProcessorMixin) -> None:
    rows = [(MCQ, []), (CLOZE, scans(1)), (make_row(scan_ids=["S1", "S2"]), scans(2))]
    examples = [format_example(processor, row, images) for row, images in rows]
    pad = pad_token_id(processor)
    right = collate(examples, pad_token_id=pad)
    lengths = [example.length for example in examples]
    assert right["input_ids"].shape == (3, max(lengths))
    # flattened image tensors are concatenated in row order: row 2's scan, then row 3's two
    expected = torch.cat([examples[1].vision["pixel_values"], examples[2].vision["pixel_values"]])
    assert torch.equal(right["pixel_values"], expected)
    for row, n in enumerate(lengths):
        assert torch.equal(right["input_ids"][row, :n], examples[row].tokens["input_ids"])
        assert (right["input_ids"][row, n:] == pad).all() and (right["labels"][row, n:] == IGNORE_INDEX).all()
        assert right["attention_mask"][row].sum() == n
    prompts = [format_example(processor, row, images, prompt_only=True) for row, images in rows]
    left = collate(prompts, pad_token_id=pad, padding_side="left")
    width = left["input_ids"].shape[1]
    for row, prompt in enumerate(prompts):
        assert torch.equal(left["input_ids"][row, width - prompt.length :], prompt.tokens["input_ids"])
        assert left["attention_mask"][row, : width - prompt.length].sum() == 0
    with pytest.raises(FormattingError, match="different inputs"):
        collate([examples[0], prompts[1]], pad_token_id=pad)


def test_collate_pads_per_sample_image_stacks() -> None:
    def example(n_images: int, size: int) -> Example:
        tokens = {"input_ids": torch.ones(4, dtype=torch.long), "attention_mask": torch.ones(4, dtype=torch.long)}
        if not n_images:
            return Example(tokens)
        return Example(tokens, {"pixel_values": torch.full((1, n_images, 3, size, size), 0.5),
                                "pixel_attention_mask": torch.ones((1, n_images, size, size), dtype=torch.long)},
                       per_sample=frozenset({"pixel_values", "pixel_attention_mask"}))

    batch = collate([example(2, 8), example(0, 0), example(1, 6)], pad_token_id=0)
    pixels, mask = batch["pixel_values"], batch["pixel_attention_mask"]
    assert pixels.shape == (3, 2, 3, 8, 8) and mask.shape == (3, 2, 8, 8)
    assert (pixels[0] == 0.5).all() and (pixels[1] == 0).all() and (mask[1] == 0).all()
    assert (pixels[2, 0, :, :6, :6] == 0.5).all() and (pixels[2, 0, :, 6:] == 0).all() and (pixels[2, 1] == 0).all()
    assert mask[2, 0].sum() == 36 and mask[2, 1].sum() == 0


def test_collate_concatenates_per_image_tensors_and_counts_images_per_sample() -> None:
    """LLaVA-OneVision's layout: (images, patches, C, H, W) pixels and image sizes over the batch's images,
    the image count per sample; a text-only row adds no image and counts 0."""
    def example(patches: list[int]) -> Example:
        tokens = {"input_ids": torch.ones(4, dtype=torch.long), "attention_mask": torch.ones(4, dtype=torch.long)}
        if not patches:
            return Example(tokens)
        pixels = torch.zeros((len(patches), max(patches), 3, 2, 2))
        for i, n in enumerate(patches):
            pixels[i, :n] = len(patches) * 10 + i + 1
        return Example(tokens, {"pixel_values": pixels, "image_sizes": torch.tensor([[32, 32 + 8 * i] for i in range(len(patches))]),
                                "batch_num_images": torch.tensor([len(patches)])}, per_sample=frozenset({"batch_num_images"}))

    batch = collate([example([1, 1]), example([]), example([3])], pad_token_id=0)
    assert batch["batch_num_images"].tolist() == [2, 0, 1]
    assert batch["image_sizes"].tolist() == [[32, 32], [32, 40], [32, 32]]
    pixels = batch["pixel_values"]
    assert pixels.shape == (3, 3, 3, 2, 2)
    assert (pixels[0, 0] == 21).all() and (pixels[1, 0] == 22).all() and (pixels[0, 1:] == 0).all()
    assert (pixels[2] == 11).all()


def test_pad_token_falls_back_to_eos(processor: ProcessorMixin) -> None:
    assert pad_token_id(processor) == processor.tokenizer.pad_token_id
    pad = processor.tokenizer.pad_token
    processor.tokenizer.pad_token = None
    try:
        assert pad_token_id(processor) == processor.tokenizer.eos_token_id
    finally:
        processor.tokenizer.pad_token = pad

"""The formatting memo of `medforget run` (data/memo.py): a hit only where the output would be the same."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import ProcessorMixin

from medforget.data import memo
from medforget.data.formatting import IGNORE_INDEX, Example, format_example
from medforget.models.loading import load_processor
from medforget.models.tiny import build_tiny_model

ROW = {"id": "r1", "task": "cloze", "question": "The patient in this scan was born on ___.", "answer": "4 July 1950",
       "options": [], "correct_index": -1, "scan_ids": ["S1"]}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory):
    return build_tiny_model([ROW["question"], ROW["answer"], "12 March 1961 Jane Doe"] * 20, tmp_path_factory.mktemp("tiny"))


@pytest.fixture()
def processor(folder) -> ProcessorMixin:
    return load_processor(str(folder))


def scan(seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (64, 64), dtype=np.uint8))


def same(a: Example, b: Example) -> bool:
    return (a.tokens.keys() == b.tokens.keys() and a.vision.keys() == b.vision.keys()
            and all(torch.equal(a.tokens[k], b.tokens[k]) for k in a.tokens)
            and all(torch.equal(a.vision[k], b.vision[k]) for k in a.vision))


def answer(processor: ProcessorMixin, example: Example) -> str:
    labels = example.tokens["labels"]
    return processor.tokenizer.decode(labels[labels != IGNORE_INDEX])


def test_off_outside_a_run(processor: ProcessorMixin) -> None:
    assert memo.active() is None
    format_example(processor, ROW, [scan(0)])
    assert memo.active() is None


def test_a_second_processor_of_the_same_files_hits(folder, processor: ProcessorMixin) -> None:
    plain = format_example(processor, ROW, [scan(0)])
    with memo.remembering() as m:
        first = format_example(processor, ROW, [scan(0)])
        other = load_processor(str(folder))
        format_example(other, ROW, [scan(0)])  # set the tokenizer's padding state, which a call changes
        hit = format_example(other, ROW, [scan(0)])
    assert (m.hits, m.misses) == (2, 1)
    assert same(plain, first) and same(plain, hit)
    assert memo.active() is None


def test_what_changes_the_output_misses(processor: ProcessorMixin) -> None:
    with memo.remembering() as m:
        base = format_example(processor, ROW, [scan(0)])
        relabelled = format_example(processor, {**ROW, "answer": "12 March 1961"}, [scan(0)])
        perturbed = scan(0)
        perturbed.putpixel((3, 3), (perturbed.getpixel((3, 3)) + 1) % 256)
        moved = format_example(processor, ROW, [perturbed])
        prompt = format_example(processor, ROW, [scan(0)], prompt_only=True)
        processor.chat_template = processor.chat_template.replace("<image>\n", "<image>")
        retemplated = format_example(processor, ROW, [scan(0)])
    assert m.hits == 0 and m.misses == 5
    assert answer(processor, base).startswith("4 July 1950") and answer(processor, relabelled).startswith("12 March 1961")
    assert not torch.equal(base.vision["pixel_values"], moved.vision["pixel_values"])
    assert "labels" not in prompt.tokens
    assert retemplated.length == base.length - 1  # the newline after the image is gone


def test_a_caller_cannot_change_what_is_remembered(processor: ProcessorMixin) -> None:
    with memo.remembering() as m:
        first = format_example(processor, ROW, [scan(0)])
        expected = Example({k: v.clone() for k, v in first.tokens.items()}, {k: v.clone() for k, v in first.vision.items()})
        first.tokens["labels"][:] = IGNORE_INDEX
        first.vision["pixel_values"].zero_()
        hit = format_example(processor, ROW, [scan(0)])
        hit.tokens["input_ids"][0] = 0
        again = format_example(processor, ROW, [scan(0)])
    assert m.hits == 2 and same(expected, again)


def test_rows_of_one_scan_share_its_tensors_and_the_memo_stays_bounded(processor: ProcessorMixin) -> None:
    with memo.remembering() as m:
        format_example(processor, ROW, [scan(0)])
        one = m.bytes
        format_example(processor, {**ROW, "id": "r2"}, [scan(0)])
        pixels = 3 * 64 * 64 * 4
        assert m.bytes - one < pixels  # the second row added its tokens only
    with memo.remembering(max_bytes=pixels) as m:
        for k in range(3):
            format_example(processor, ROW, [scan(k)])
        assert m.bytes <= pixels + 4096 and len(m.entries) <= 1

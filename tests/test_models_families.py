"""The shared formatting, batching, loss, LoRA and generation path on tiny random models of each family
(built in tests/families.py from their real configs and chat templates; nothing is downloaded)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedModel, ProcessorMixin

from families import FAMILIES
from medforget.data.collate import collate, pad_token_id
from medforget.data.formatting import IGNORE_INDEX, answer_text, end_of_turn_ids, format_example
from medforget.models.lora import LoraSettings, apply_lora
from medforget.models.loss import answer_token_counts, answer_token_loss
from medforget.models.parts import VisionPartsError, freeze_vision_tower, vision_parts

QUESTIONS = [
    "What imaging modality is shown in this scan?",
    "The patient in this scan was born on ___.",
    "Which of the two scans has the higher image quality?",
]
ROWS = [
    {"id": "q1", "task": "mcq", "question": QUESTIONS[0], "options": ["CT", "MRI", "X-ray"], "correct_index": 1,
     "answer": "MRI", "scan_ids": ["S1"]},
    {"id": "q2", "task": "cloze", "question": "Jane Doe was born on ___.", "options": [], "correct_index": -1,
     "answer": "12 March 1961", "scan_ids": []},
    {"id": "q3", "task": "open", "question": QUESTIONS[2], "options": [], "correct_index": -1,
     "answer": "The first scan", "scan_ids": ["S1", "S2"]},
]
TEXTS = [*QUESTIONS, "MRI CT X-ray", "Jane Doe was born on 12 March 1961.", "The first scan"] * 20


@dataclass
class Family:
    model: PreTrainedModel
    processor: ProcessorMixin
    end_of_turn: str
    vision_prefix: str


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request: Any, tmp_path_factory: pytest.TempPathFactory, one_thread: None) -> Family:
    spec = FAMILIES[request.param]
    model, processor = spec.build(TEXTS, tmp_path_factory.mktemp(request.param))
    assert (model.get_output_embeddings().weight is model.get_input_embeddings().weight) == spec.tied
    return Family(model, processor, spec.end_of_turn, vision_parts(model).tower + ".")


def scans(n: int, seed: int) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8), mode="L") for _ in range(n)]


def batch(family: Family, prompt_only: bool = False, padding_side: str = "right") -> dict[str, torch.Tensor]:
    examples = [
        format_example(family.processor, row, scans(len(row["scan_ids"]), i), prompt_only=prompt_only)
        for i, row in enumerate(ROWS)
    ]
    return collate(examples, pad_token_id=pad_token_id(family.processor), padding_side=padding_side)


def test_labels_keep_only_answer_and_end_of_turn(family: Family) -> None:
    inputs = batch(family)
    tokenizer = family.processor.tokenizer
    for row, ids, labels, mask in zip(ROWS, inputs["input_ids"], inputs["labels"], inputs["attention_mask"]):
        scored = labels != IGNORE_INDEX
        assert torch.equal(labels[scored], ids[scored])
        assert tokenizer.decode(ids[scored]).strip() == answer_text(row) + family.end_of_turn
        # the scored span is the end of the real (unpadded) sequence
        last = int(mask.nonzero().max())
        first = int(scored.nonzero().min())
        assert scored[first : last + 1].all() and not scored[last + 1 :].any()
    assert (inputs["labels"][inputs["attention_mask"] == 0] == IGNORE_INDEX).all()


def test_answer_own_tokens_open_the_labels_and_leave_the_end_of_turn(family: Family) -> None:
    """What membership attacks read: the labelled tokens up to, not including, the template's end of turn."""
    inputs = batch(family)
    tokenizer = family.processor.tokenizer
    for row, labels in zip(ROWS, inputs["labels"]):
        labelled = labels[labels != IGNORE_INDEX].tolist()
        closing = end_of_turn_ids(family.processor, row, len(row["scan_ids"]))
        own = len(labelled) - len(closing)
        assert closing and labelled[own:] == closing
        assert tokenizer.decode(labelled[:own]).strip() == answer_text(row)
        assert tokenizer.decode(closing).strip() == family.end_of_turn


def test_answer_token_loss_matches_model_loss(family: Family) -> None:
    inputs = batch(family)
    with torch.no_grad():
        reference = family.model(**inputs).loss
        mean = answer_token_loss(family.model, inputs)
        per_sample = answer_token_loss(family.model, inputs, reduction="sum_per_sample")
        per_token = answer_token_loss(family.model, inputs, reduction="none")
    counts = answer_token_counts(inputs)
    assert torch.allclose(mean, reference, atol=1e-5)
    assert torch.allclose(per_sample.sum() / counts.sum(), reference, atol=1e-5)
    assert torch.allclose(per_token.sum(dim=1), per_sample, atol=1e-5)
    assert (per_token[inputs["labels"][:, 1:] == IGNORE_INDEX] == 0).all()
    assert counts.tolist() == [int((row != IGNORE_INDEX).sum()) for row in inputs["labels"]]


def test_training_step_updates_language_and_vision(family: Family) -> None:
    inputs = batch(family)
    model = family.model
    before = {name: param.detach().clone() for name, param in model.named_parameters()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    loss = answer_token_loss(model, inputs)
    loss.backward()
    grads = {name: param.grad for name, param in model.named_parameters() if param.grad is not None}
    assert torch.isfinite(loss)
    assert model.get_output_embeddings().weight.grad.abs().sum() > 0  # lm_head, tied or not
    assert any(g.abs().sum() > 0 for n, g in grads.items() if n.startswith(family.vision_prefix))
    optimizer.step()
    optimizer.zero_grad()
    model.eval()
    with torch.no_grad():
        after = answer_token_loss(model, inputs)
    changed = [name for name, param in model.named_parameters() if not torch.equal(param, before[name])]
    assert any(name.startswith(family.vision_prefix) for name in changed)
    assert after < loss.detach()
    model.load_state_dict(before, strict=False)  # a tied lm_head is restored with the embeddings


def test_a_mixed_batch_scores_every_row_as_it_scores_alone(family: Family) -> None:
    """Text-only, one-image and two-image rows in one batch: each row's loss is the one it has alone, so
    no image is dropped, duplicated or given to the wrong row."""
    examples = [format_example(family.processor, row, scans(len(row["scan_ids"]), i)) for i, row in enumerate(ROWS)]
    pad = pad_token_id(family.processor)
    with torch.no_grad():
        together = answer_token_loss(family.model, collate(examples, pad_token_id=pad), reduction="sum_per_sample")
        alone = [answer_token_loss(family.model, collate([e], pad_token_id=pad), reduction="sum_per_sample")[0]
                 for e in examples]
    torch.testing.assert_close(together, torch.stack(alone), rtol=1e-4, atol=1e-4)


def test_packed_preference_pairs_keep_the_image_layout(family: Family) -> None:
    """idk_po packs a preferred and a rejected answer into one example: its images must batch as the
    preferred examples' own do (per-sample stacks stay per sample)."""
    from medforget.methods.idk_po import pack_pair, unpack_pair

    def rejected(row: dict) -> dict:
        if row["task"] == "mcq":
            return {**row, "correct_index": 0, "answer": row["options"][0]}
        return {**row, "answer": "I do not know"}

    images = [scans(len(row["scan_ids"]), i) for i, row in enumerate(ROWS)]
    wins = [format_example(family.processor, row, imgs) for row, imgs in zip(ROWS, images)]
    loses = [format_example(family.processor, rejected(row), imgs) for row, imgs in zip(ROWS, images)]
    pad = pad_token_id(family.processor)
    win, _ = unpack_pair(collate([pack_pair(w, lose) for w, lose in zip(wins, loses)], pad_token_id=pad))
    expected = collate(wins, pad_token_id=pad)
    for key in wins[0].vision:
        assert torch.equal(win[key], expected[key]), key


def test_freezing_keeps_the_tower_and_trains_the_projector(family: Family) -> None:
    model = type(family.model)(family.model.config)
    parts = freeze_vision_tower(model)
    frozen = parts.tower_parameters(model)
    assert frozen and not any(param.requires_grad for param in frozen.values())
    assert parts.projector is not None
    assert all(param.requires_grad for param in model.get_submodule(parts.projector).parameters())
    assert all(param.requires_grad for name, param in model.named_parameters() if name not in frozen)


def test_a_model_without_a_vision_tower_is_a_one_line_error() -> None:
    model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=1))
    with pytest.raises(VisionPartsError, match="cannot find the vision tower of LlamaForCausalLM") as caught:
        freeze_vision_tower(model)
    assert "\n" not in str(caught.value)


def test_left_padded_generation_matches_single_rows(family: Family) -> None:
    inputs = batch(family, prompt_only=True, padding_side="left")
    assert "labels" not in inputs
    assert (inputs["attention_mask"][:, -1] == 1).all()
    pad = pad_token_id(family.processor)
    with torch.no_grad():
        generated = family.model.generate(**inputs, max_new_tokens=3, do_sample=False, pad_token_id=pad)
    width = inputs["input_ids"].shape[1]
    assert torch.equal(generated[:, :width], inputs["input_ids"])
    for i, row in enumerate(ROWS):
        single = collate(
            [format_example(family.processor, row, scans(len(row["scan_ids"]), i), prompt_only=True)],
            pad_token_id=pad,
        )
        with torch.no_grad():
            alone = family.model.generate(**single, max_new_tokens=3, do_sample=False, pad_token_id=pad)
        assert torch.equal(alone[0, single["input_ids"].shape[1] :], generated[i, width:])


def test_default_lora_targets_only_the_language_model(family: Family) -> None:
    model = type(family.model)(family.model.config)
    peft_model = apply_lora(model, LoraSettings(r=4, alpha=8, dropout=0.0))
    adapted = [name for name, _ in peft_model.named_parameters() if "lora_A" in name]
    layers = family.model.config.get_text_config().num_hidden_layers
    assert len(adapted) == layers * 7
    assert not any(family.vision_prefix.removeprefix("model.") in name for name in adapted)
    trainable = [name for name, param in peft_model.named_parameters() if param.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)
    inputs = batch(family)
    loss = answer_token_loss(peft_model, inputs)
    loss.backward()
    assert all(param.grad is not None for name, param in peft_model.named_parameters() if "lora_B" in name)
    prompts = batch(family, prompt_only=True, padding_side="left")
    with torch.no_grad():
        generated = peft_model.generate(**prompts, max_new_tokens=2, do_sample=False,
                                        pad_token_id=pad_token_id(family.processor))
    assert generated.shape == (len(ROWS), prompts["input_ids"].shape[1] + 2)


def mcq_rows() -> tuple[list[dict], Any]:
    """One-image, text-only and two-image MCQ rows, and their images by row."""
    rows = [ROWS[0], {"id": "q5", "task": "mcq", "question": "Jane Doe was born in which year?",
                      "options": ["1961", "1970", "1985"], "correct_index": 0, "answer": "1961", "scan_ids": []},
            {**ROWS[0], "id": "q4", "options": ["X-ray", "ultrasound"], "correct_index": 0, "answer": "X-ray",
             "scan_ids": ["S2", "S3"]}]
    images = {row["id"]: scans(len(row["scan_ids"]), i) for i, row in enumerate(rows)}
    return rows, lambda row: images[row["id"]]


def test_batched_scoring_equals_one_row_at_a_time(family: Family) -> None:
    """Option likelihoods and the membership attacks' token statistics of a mixed batch, against each row alone."""
    from medforget.evaluate import engine

    rows, get = mcq_rows()
    together = engine.score_options(family.model, family.processor, rows, get, batch_size=64)
    stats = engine.answer_token_stats(family.model, family.processor, rows, get, batch_size=64)
    for row, scores, tokens in zip(rows, together, stats):
        alone = engine.score_options(family.model, family.processor, [row], get)[0]
        assert scores.raw == pytest.approx(alone.raw, abs=1e-3)
        single = engine.answer_token_stats(family.model, family.processor, [row], get)[0]
        assert tokens.logprobs == pytest.approx(single.logprobs, abs=1e-3)
        assert tokens.mu == pytest.approx(single.mu, abs=1e-3)


def test_option_scores_are_the_same_with_and_without_a_shared_prompt(family: Family) -> None:
    """LLaVA and Idefics3 score options on a cached prompt; every family must give what scoring each
    (question, option) pair in full gives, and Qwen2-VL (M-RoPE positions) takes the full path."""
    from medforget.evaluate import engine

    rows, get = mcq_rows()
    full = engine._score_pairs(family.model, family.processor, rows, get, 64, None)
    scores = engine.score_options(family.model, family.processor, rows, get, batch_size=4)
    shared = engine._shares_prompts(family.model, family.processor, rows[0], get)
    assert shared == (family.model.config.model_type in engine.SHARED_PROMPT_FAMILIES)
    for a, b in zip(scores, full):
        assert a.raw == pytest.approx(b.raw, abs=1e-3) and a.normalised == pytest.approx(b.normalised, abs=1e-4)


def test_the_formatting_memo_gives_what_formatting_gives(family: Family) -> None:
    """Remembered examples (inside `medforget run`) equal freshly formatted ones, for every family's
    processor, prompts and training examples alike; the second pass is served from the memo."""
    from medforget.data.memo import remembering

    for prompt_only in (False, True):
        plain = batch(family, prompt_only)
        with remembering() as memo:
            batch(family, prompt_only)
            again = batch(family, prompt_only)
        assert memo.hits == len(ROWS) and memo.misses == len(ROWS)
        assert plain.keys() == again.keys() and all(torch.equal(plain[k], again[k]) for k in plain)

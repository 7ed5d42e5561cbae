"""The shared formatting, batching, loss, LoRA and generation path on tiny random models of each family.

Qwen2-VL and Idefics3 (SmolVLM) are built from configs with processors around a locally trained tokenizer,
as transformers' own tests do; nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import (
    AutoModelForImageTextToText,
    AutoProcessor,
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    Idefics3ImageProcessorPil,
    Idefics3Processor,
    LlamaConfig,
    PreTrainedModel,
    ProcessorMixin,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessorPil,
    Qwen2VLProcessor,
)

from medforget.data.collate import collate, pad_token_id
from medforget.data.formatting import IGNORE_INDEX, answer_text, answer_token_ids, format_example
from medforget.models.lora import LoraSettings, apply_lora
from medforget.models.loss import answer_token_counts, answer_token_loss
from medforget.models.tiny import build_tiny_model, train_tokenizer

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


class ImageOnlyQwen2VLProcessor(Qwen2VLProcessor):
    """Qwen2VLProcessor without its video processor, whose class needs torchvision (not installed here)."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        self.image_token, self.video_token = "<|image_pad|>", "<|video_pad|>"
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)


QWEN_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# SmolVLM's own template.
SMOLVLM_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
TEXT = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2}


def family_tokenizer(extra: list[str]):
    tokenizer = train_tokenizer(TEXTS, 512)
    tokenizer.add_special_tokens({"additional_special_tokens": extra})
    return tokenizer


def build_qwen2_vl() -> tuple[PreTrainedModel, ProcessorMixin]:
    tokenizer = family_tokenizer(
        ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    )
    image_processor = Qwen2VLImageProcessorPil(
        patch_size=8, merge_size=2, temporal_patch_size=2, min_pixels=32 * 32, max_pixels=64 * 64
    )
    processor = ImageOnlyQwen2VLProcessor(image_processor=image_processor, tokenizer=tokenizer, chat_template=QWEN_TEMPLATE)
    config = Qwen2VLConfig(
        vision_config={"depth": 1, "embed_dim": 32, "hidden_size": 32, "num_heads": 2, "patch_size": 8,
                       "spatial_merge_size": 2, "temporal_patch_size": 2},
        text_config={**TEXT, "vocab_size": len(tokenizer), "max_position_embeddings": 512,
                     "rope_parameters": {"rope_type": "default", "mrope_section": [2, 1, 1], "rope_theta": 10000.0},
                     "pad_token_id": tokenizer.pad_token_id, "bos_token_id": tokenizer.bos_token_id,
                     "eos_token_id": tokenizer.convert_tokens_to_ids("<|im_end|>")},
        image_token_id=processor.image_token_id,
        video_token_id=processor.video_token_id,
        vision_start_token_id=tokenizer.convert_tokens_to_ids("<|vision_start|>"),
    )
    torch.manual_seed(0)
    return Qwen2VLForConditionalGeneration(config).eval(), processor


def build_idefics3() -> tuple[PreTrainedModel, ProcessorMixin]:
    tokenizer = family_tokenizer(["<|im_start|>", "<fake_token_around_image>", "<end_of_utterance>", "<global-img>"])
    image_processor = Idefics3ImageProcessorPil(
        do_image_splitting=False, size={"longest_edge": 64}, max_image_size={"longest_edge": 64}
    )
    processor = Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=16,
                                  chat_template=SMOLVLM_TEMPLATE)
    config = Idefics3Config(
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 64, "patch_size": 8},
        text_config=LlamaConfig(**TEXT, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id),
        scale_factor=2,
        image_token_id=processor.image_token_id,
    )
    torch.manual_seed(0)
    return Idefics3ForConditionalGeneration(config).eval(), processor


def build_llava(folder: Path) -> tuple[PreTrainedModel, ProcessorMixin]:
    build_tiny_model(TEXTS, folder)
    return AutoModelForImageTextToText.from_pretrained(folder, use_safetensors=True).eval(), AutoProcessor.from_pretrained(folder)


@dataclass
class Family:
    model: PreTrainedModel
    processor: ProcessorMixin
    end_of_turn: str
    vision_prefix: str


@pytest.fixture(scope="module", params=["llava", "qwen2_vl", "idefics3"])
def family(request: Any, tmp_path_factory: pytest.TempPathFactory) -> Family:
    if request.param == "llava":
        model, processor = build_llava(tmp_path_factory.mktemp("llava"))
        return Family(model, processor, "</s>", "model.vision_tower.")
    if request.param == "qwen2_vl":
        return Family(*build_qwen2_vl(), "<|im_end|>", "model.visual.")
    return Family(*build_idefics3(), "<end_of_utterance>", "model.vision_model.")


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
        own = answer_token_ids(family.processor, row, len(row["scan_ids"]), end_of_turn=False)
        assert labelled[:len(own)] == own and len(own) < len(labelled)
        assert tokenizer.decode(own).strip() == answer_text(row)
        assert tokenizer.decode(labelled[len(own):]).strip() == family.end_of_turn


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
    assert grads[next(n for n in grads if "lm_head" in n)].abs().sum() > 0
    assert any(g.abs().sum() > 0 for n, g in grads.items() if n.startswith(family.vision_prefix))
    optimizer.step()
    optimizer.zero_grad()
    model.eval()
    with torch.no_grad():
        after = answer_token_loss(model, inputs)
    changed = [name for name, param in model.named_parameters() if not torch.equal(param, before[name])]
    assert any(name.startswith(family.vision_prefix) for name in changed)
    assert after < loss.detach()
    model.load_state_dict(before)


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


def test_option_scores_are_the_same_with_and_without_a_shared_prompt(family: Family) -> None:
    """LLaVA and Idefics3 score options on a cached prompt; every family must give what scoring each
    (question, option) pair in full gives, and Qwen2-VL (M-RoPE positions) takes the full path."""
    from medforget.evaluate import engine

    rows = [ROWS[0], {**ROWS[0], "id": "q4", "options": ["X-ray", "ultrasound"], "correct_index": 0, "answer": "X-ray",
                      "scan_ids": ["S2"]},
            {"id": "q5", "task": "mcq", "question": "Jane Doe was born in which year?", "options": ["1961", "1970", "1985"],
             "correct_index": 0, "answer": "1961", "scan_ids": []}]
    images = {row["id"]: scans(len(row["scan_ids"]), i) for i, row in enumerate(rows)}
    get = lambda row: images[row["id"]]  # noqa: E731
    full = engine._score_pairs(family.model, family.processor, rows, get, 64, None)
    scores = engine.score_options(family.model, family.processor, rows, get, batch_size=4)
    shared = engine._shares_prompts(family.model, family.processor, rows[0], get)
    assert shared == (family.model.config.model_type in engine.SHARED_PROMPT_FAMILIES)
    for a, b in zip(scores, full):
        assert a.raw == pytest.approx(b.raw, abs=1e-3) and a.normalised == pytest.approx(b.normalised, abs=1e-4)

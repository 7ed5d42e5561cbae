"""The embedded tiny LLaVA: built offline, saved as safetensors, loadable by medforget and by plain transformers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForImageTextToText, LlavaForConditionalGeneration, LlavaProcessor

from medforget.data.collate import collate, pad_token_id
from medforget.data.formatting import format_example
from medforget.models.loading import load_model, save_model
from medforget.models.lora import LoraSettings
from medforget.models.loss import answer_token_loss
from medforget.models.tiny import TINY_SIZES, build_tiny_model

TEXTS = ["What imaging modality is shown in this scan?", "CT MRI X-ray ultrasound", "Jane Doe, born 12 March 1961"] * 30
PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".ckpt", ".pkl"}
ROW = {"id": "q1", "task": "open", "question": "What imaging modality is shown in this scan?", "options": [],
       "correct_index": -1, "answer": "CT", "scan_ids": ["S1"]}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(TEXTS, tmp_path_factory.mktemp("tiny"))


def scan(size: int = 64) -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (size, size), dtype=np.uint8), mode="L")


def assert_no_pickle(folder: Path) -> None:
    assert not [p for p in folder.rglob("*") if p.suffix in PICKLE_SUFFIXES]
    assert (folder / "model.safetensors").is_file()


def test_folder_is_safetensors_and_loads_with_plain_transformers(tiny_dir: Path) -> None:
    assert_no_pickle(tiny_dir)
    plain = AutoModelForImageTextToText.from_pretrained(tiny_dir, use_safetensors=True)
    model, processor = load_model(tiny_dir)
    assert isinstance(plain, LlavaForConditionalGeneration) and isinstance(model, LlavaForConditionalGeneration)
    assert isinstance(processor, LlavaProcessor)
    assert next(model.parameters()).dtype == torch.float32  # "auto" on CPU
    stored = load_file(tiny_dir / "model.safetensors")
    for name, param in model.state_dict().items():
        assert torch.equal(param, plain.state_dict()[name])
    assert len(stored) == len(model.state_dict())


def test_sizes_and_image_tokens(tiny_dir: Path, tmp_path: Path) -> None:
    model, processor = load_model(tiny_dir)
    n_params = sum(p.numel() for p in model.parameters())
    assert 1_000_000 < n_params < 10_000_000
    sizes = TINY_SIZES["tiny"]
    assert model.config.text_config.hidden_size == sizes.text_hidden
    assert model.config.vision_config.num_hidden_layers == sizes.vision_layers
    assert model.config.text_config.vocab_size == len(processor.tokenizer) <= sizes.vocab_size
    example = format_example(processor, ROW, [scan()], prompt_only=True)
    assert int((example.tokens["input_ids"] == model.config.image_token_id).sum()) == (64 // sizes.patch_size) ** 2
    smoke, smoke_processor = load_model(build_tiny_model(TEXTS, tmp_path / "smoke", image_size=32))
    inputs = collate([format_example(smoke_processor, ROW, [scan(32)])], pad_token_id=pad_token_id(smoke_processor))
    assert inputs["pixel_values"].shape == (1, 3, 32, 32)
    assert int((inputs["input_ids"] == smoke.config.image_token_id).sum()) == (32 // sizes.patch_size) ** 2
    assert torch.isfinite(answer_token_loss(smoke, inputs))


def test_same_seed_same_model(tiny_dir: Path, tmp_path: Path) -> None:
    again = build_tiny_model(TEXTS, tmp_path / "again")
    other = build_tiny_model(TEXTS, tmp_path / "other", seed=1)
    first = load_file(tiny_dir / "model.safetensors")
    same, different = load_file(again / "model.safetensors"), load_file(other / "model.safetensors")
    assert all(torch.equal(tensor, same[key]) for key, tensor in first.items())
    assert not all(torch.equal(tensor, different[key]) for key, tensor in first.items())
    assert (tiny_dir / "tokenizer.json").read_text() == (again / "tokenizer.json").read_text()


def test_tokenizer_is_byte_level_and_chat_template_renders_turns(tiny_dir: Path) -> None:
    _, processor = load_model(tiny_dir)
    tokenizer = processor.tokenizer
    unseen = "Zoë Ålvarez — MRN 0042‑77, ☎ +44 20 7946 0958"
    assert tokenizer.decode(tokenizer(unseen, add_special_tokens=False)["input_ids"]) == unseen
    for token in ("<pad>", "<s>", "</s>", "<image>", "<|user|>", "<|assistant|>"):
        assert len(tokenizer(token, add_special_tokens=False)["input_ids"]) == 1
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Q?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "A"}]},
    ]
    assert processor.apply_chat_template(messages) == "<s><|user|><image>\nQ?</s><|assistant|>A</s>"
    assert processor.apply_chat_template(messages[:1], add_generation_prompt=True).endswith("</s><|assistant|>")


def test_save_model_round_trip(tiny_dir: Path, tmp_path: Path) -> None:
    model, processor = load_model(tiny_dir)
    with torch.no_grad():
        model.lm_head.weight.add_(1.0)
    out = save_model(model, processor, tmp_path / "saved")
    assert_no_pickle(out)
    reloaded, _ = load_model(out)
    for name, param in model.state_dict().items():
        assert torch.equal(param, reloaded.state_dict()[name]), name


def test_save_model_merges_lora_without_touching_the_adapter(tiny_dir: Path, tmp_path: Path) -> None:
    model, processor = load_model(tiny_dir, lora=LoraSettings(r=4, alpha=8, dropout=0.0))
    assert isinstance(model, PeftModel)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.05)
    inputs = collate([format_example(processor, ROW, [scan()])], pad_token_id=pad_token_id(processor))
    with torch.no_grad():
        expected = answer_token_loss(model, inputs, reduction="none")
    out = save_model(model, processor, tmp_path / "merged")
    assert_no_pickle(out)
    assert not [key for key in load_file(out / "model.safetensors") if "lora" in key or "base_layer" in key]
    merged, _ = load_model(out)
    with torch.no_grad():
        assert torch.allclose(answer_token_loss(merged, inputs, reduction="none"), expected, atol=1e-5)
        assert torch.equal(answer_token_loss(model, inputs, reduction="none"), expected)
    assert isinstance(model, PeftModel) and any("lora_B" in name for name, _ in model.named_parameters())


def test_bfloat16_load(tiny_dir: Path) -> None:
    model, _ = load_model(tiny_dir, dtype="bfloat16", device="cpu")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}

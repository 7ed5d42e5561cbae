"""``load_model`` refuses bad folders with one line naming what was expected, and loads the other families."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from transformers import (
    BertConfig,
    PaliGemmaConfig,
    PaliGemmaForConditionalGeneration,
    PaliGemmaProcessor,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    SiglipImageProcessorPil,
)
from transformers.utils import is_torchvision_available

from medforget.errors import MedforgetError
from medforget.models.loading import ModelLoadError, load_model
from medforget.models.lora import LoraError, LoraSettings, apply_lora
from medforget.models.tiny import build_tiny_model, train_tokenizer

TEXTS = ["What imaging modality is shown in this scan?", "CT MRI X-ray"] * 20


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(TEXTS, tmp_path_factory.mktemp("tiny"))


def copy_without(source: Path, target: Path, *names: str) -> Path:
    shutil.copytree(source, target)
    for name in names:
        (target / name).unlink()
    return target


def load_error(path: Path, **kwargs: object) -> str:
    with pytest.raises(ModelLoadError) as caught:
        load_model(path, **kwargs)
    message = str(caught.value)
    assert isinstance(caught.value, MedforgetError) and "\n" not in message
    return message


def test_missing_folder(tmp_path: Path) -> None:
    message = load_error(tmp_path / "nowhere")
    assert "model folder not found" in message and "config.json" in message


def test_folder_without_config(tmp_path: Path, tiny_dir: Path) -> None:
    assert "no config.json" in load_error(copy_without(tiny_dir, tmp_path / "m", "config.json"))


def test_folder_without_weights(tmp_path: Path, tiny_dir: Path) -> None:
    message = load_error(copy_without(tiny_dir, tmp_path / "m", "model.safetensors"))
    assert "no weights" in message and "model.safetensors" in message


def test_pickle_weights_are_refused(tmp_path: Path, tiny_dir: Path) -> None:
    folder = copy_without(tiny_dir, tmp_path / "m", "model.safetensors")
    (folder / "pytorch_model.bin").write_bytes(b"not loaded")
    message = load_error(folder)
    assert "pytorch_model.bin" in message and "expected model.safetensors" in message


def test_folder_without_tokenizer(tmp_path: Path, tiny_dir: Path) -> None:
    message = load_error(copy_without(tiny_dir, tmp_path / "m", "tokenizer.json", "tokenizer_config.json"))
    assert "no tokenizer" in message


def test_folder_without_image_processor(tmp_path: Path, tiny_dir: Path) -> None:
    assert "no image processor" in load_error(copy_without(tiny_dir, tmp_path / "m", "processor_config.json"))


def test_unsupported_architecture(tmp_path: Path, tiny_dir: Path) -> None:
    folder = copy_without(tiny_dir, tmp_path / "m", "config.json")
    BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64).save_pretrained(folder)
    message = load_error(folder)
    assert "unsupported architecture 'bert'" in message and "llava" in message


def test_unknown_dtype(tiny_dir: Path) -> None:
    assert "unknown dtype 'int8'" in load_error(tiny_dir, dtype="int8")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available")
def test_cuda_without_cuda(tiny_dir: Path) -> None:
    assert "CUDA is not available" in load_error(tiny_dir, device="cuda")


def test_lora_with_targets_that_match_nothing(tiny_dir: Path) -> None:
    model, _ = load_model(tiny_dir)
    with pytest.raises(LoraError):
        apply_lora(model, LoraSettings(target_modules=["no_such_layer"]))


def test_paligemma_loads(tmp_path: Path) -> None:
    tokenizer = train_tokenizer(TEXTS, 300)
    image_processor = SiglipImageProcessorPil(size={"height": 32, "width": 32})
    image_processor.image_seq_length = 16
    processor = PaliGemmaProcessor(image_processor=image_processor, tokenizer=tokenizer)
    config = PaliGemmaConfig(
        vision_config={"model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 64,
                       "num_hidden_layers": 1, "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
        text_config={"model_type": "gemma", "vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64,
                     "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16},
        image_token_id=processor.image_token_id,
        projection_dim=32,
    )
    PaliGemmaForConditionalGeneration(config).save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    model, loaded = load_model(tmp_path, lora=LoraSettings(r=2, alpha=4))
    assert type(model.get_base_model()).__name__ == "PaliGemmaForConditionalGeneration"
    assert type(loaded).__name__ == "PaliGemmaProcessor" and loaded.image_seq_length == 16
    adapted = {name.split(".lora_A")[0] for name, _ in model.named_parameters() if "lora_A" in name}
    assert adapted and all(".language_model." in name for name in adapted)


def qwen2_vl_folder(folder: Path) -> Path:
    """A Qwen2-VL folder whose processor_config names the real Qwen2VLProcessor."""
    tokenizer = train_tokenizer(TEXTS, 300)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|vision_start|>", "<|image_pad|>", "<|video_pad|>"]})
    config = Qwen2VLConfig(
        vision_config={"depth": 1, "embed_dim": 32, "hidden_size": 32, "num_heads": 2, "patch_size": 8},
        text_config={"vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                     "num_attention_heads": 4, "num_key_value_heads": 2, "bos_token_id": tokenizer.bos_token_id,
                     "eos_token_id": tokenizer.eos_token_id,
                     "rope_parameters": {"rope_type": "default", "mrope_section": [2, 1, 1], "rope_theta": 10000.0}},
        image_token_id=tokenizer.convert_tokens_to_ids("<|image_pad|>"),
        video_token_id=tokenizer.convert_tokens_to_ids("<|video_pad|>"),
        vision_start_token_id=tokenizer.convert_tokens_to_ids("<|vision_start|>"),
    )
    Qwen2VLForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    image_processor = {"image_processor_type": "Qwen2VLImageProcessor", "patch_size": 8, "merge_size": 2,
                       "temporal_patch_size": 2, "size": {"shortest_edge": 1024, "longest_edge": 4096}}
    video_processor = {**image_processor, "video_processor_type": "Qwen2VLVideoProcessor"}
    (folder / "processor_config.json").write_text(json.dumps(
        {"processor_class": "Qwen2VLProcessor", "image_processor": image_processor, "video_processor": video_processor}
    ))
    return folder


def test_qwen2_vl_folder(tmp_path: Path) -> None:
    folder = qwen2_vl_folder(tmp_path)
    if is_torchvision_available():
        model, processor = load_model(folder)
        assert type(model).__name__ == "Qwen2VLForConditionalGeneration"
        assert type(processor).__name__ == "Qwen2VLProcessor"
        assert next(model.parameters()).dtype == torch.float32
    else:
        assert "torchvision is not installed" in load_error(folder)

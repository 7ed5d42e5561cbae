"""Load and save vision-language models, safetensors only, with errors a user can act on.

Every stage (fine-tuning, unlearning, evaluation) goes through ``load_model`` so that dtype, device and
attention choices are made in one place, and a bad folder fails early with one line saying what was
expected instead of a deep ``transformers`` traceback.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from peft import PeftModel
from peft.tuners.lora import LoraLayer
from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor, PreTrainedModel, ProcessorMixin
from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES
from transformers.utils import is_torchvision_available

from medforget.errors import MedforgetError
from medforget.models.lora import LoraSettings, apply_lora

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
TESTED_FAMILIES = ("llava", "llava_next", "qwen2_vl", "qwen2_5_vl", "idefics3", "paligemma", "gemma3", "llava_onevision")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")
IMAGE_PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
ADAPTER_CONFIG, ADAPTER_WEIGHTS = "adapter_config.json", "adapter_model.safetensors"


class ModelLoadError(MedforgetError):
    """A model folder or id that cannot be loaded; the message names what was expected."""


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Default to the GPU when there is one: the toolkit's runs are meant to use it."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    target = torch.device(device)
    if target.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device '{device}' requested but CUDA is not available: expected cpu (or no device)")
    return target


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``auto`` is bfloat16 on CUDA (half the memory, stable training) and float32 on CPU (bf16 matmuls are slow there)."""
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in DTYPES:
        raise ModelLoadError(f"unknown dtype '{dtype}': expected one of auto, {', '.join(DTYPES)}")
    return DTYPES[dtype]


def check_model_folder(folder: Path) -> None:
    """Fail before ``transformers`` does, naming the missing piece of a model folder."""
    expected = "a model folder with config.json, *.safetensors weights and tokenizer/processor files"
    if not folder.is_dir():
        raise ModelLoadError(f"model folder not found: {folder} (expected {expected})")
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ModelLoadError(f"no config.json in {folder} (expected {expected})")
    try:
        model_type = json.loads(config_file.read_text()).get("model_type")
    except (json.JSONDecodeError, AttributeError) as err:
        raise ModelLoadError(f"{config_file} is not a JSON object: {err}") from err
    check_architecture(model_type, str(config_file))
    if not any(folder.glob("*.safetensors")):
        pickled = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
        if pickled:
            raise ModelLoadError(
                f"only pickle weights in {folder} ({', '.join(pickled)}): expected model.safetensors; "
                "medforget never loads pickle files"
            )
        raise ModelLoadError(f"no weights in {folder}: expected model.safetensors (or sharded *.safetensors)")
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise ModelLoadError(f"no tokenizer in {folder}: expected one of {', '.join(TOKENIZER_FILES)}")
    if not any((folder / name).is_file() for name in IMAGE_PROCESSOR_FILES):
        raise ModelLoadError(f"no image processor in {folder}: expected one of {', '.join(IMAGE_PROCESSOR_FILES)}")


def check_architecture(model_type: str | None, where: str) -> None:
    """Only image-text-to-text models fit the pipeline (images in, answer text out)."""
    if model_type not in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        raise ModelLoadError(
            f"unsupported architecture '{model_type}' in {where}: expected an image-text-to-text model "
            f"such as {', '.join(TESTED_FAMILIES)}"
        )


def check_model_source(source: str) -> None:
    """Fail early, in one line, on what `load_model` could not load: a model folder missing a piece, an adapter
    folder without its base or safetensors weights, or a hub id whose config cannot be read (none is
    downloaded here beyond the config; offline, a missing id fails at once)."""
    folder = Path(source)
    if (folder / ADAPTER_CONFIG).is_file():
        base = _adapter_base(folder)
        check_model_source(base)
        return
    if folder.exists() or not HUB_ID.match(source):
        check_model_folder(folder)
        return
    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"could not read the config of '{source}' (no such local folder, so it was tried as a "
                             f"Hugging Face model id): {_first_line(err)}") from err
    check_architecture(config.model_type, source)


def load_model(
    path_or_id: str | Path,
    *,
    dtype: str = "auto",
    device: str | torch.device | None = None,
    lora: LoraSettings | None = None,
    attn_implementation: str = "sdpa",
) -> tuple[PreTrainedModel | PeftModel, ProcessorMixin]:
    """Load a model and its processor from a local folder (or a Hugging Face id), optionally adding fresh LoRA adapters.
    A LoRA adapter folder (adapter_config.json) is loaded onto its base model and merged into it."""
    source = str(path_or_id)
    folder = Path(source)
    if (folder / ADAPTER_CONFIG).is_file():
        return _load_adapter(folder, dtype=dtype, device=device, lora=lora, attn_implementation=attn_implementation)
    if folder.exists() or not HUB_ID.match(source):
        check_model_folder(folder)
    target = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, target)
    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as err:
        where = "" if folder.exists() else " (no such local folder, so it was tried as a Hugging Face model id)"
        raise ModelLoadError(f"could not read the config of '{source}'{where}: {_first_line(err)}") from err
    check_architecture(config.model_type, source)
    try:
        model = AutoModelForImageTextToText.from_pretrained(
            source, dtype=torch_dtype, attn_implementation=attn_implementation, use_safetensors=True
        )
    except (OSError, ValueError, RuntimeError) as err:
        raise ModelLoadError(f"could not load the weights of '{source}': {_first_line(err)}") from err
    processor = load_processor(source)
    model.to(target)
    return (apply_lora(model, lora) if lora is not None else model), processor


def _load_adapter(folder: Path, *, lora: LoraSettings | None, **options) -> tuple[PreTrainedModel | PeftModel, ProcessorMixin]:
    """A PEFT adapter folder: its base model (``base_model_name_or_path``) with the adapter merged in, and the
    adapter folder's processor when it has one (else the base's)."""
    base = _adapter_base(folder)
    model, processor = load_model(base, **options)
    try:
        model = PeftModel.from_pretrained(model, str(folder)).merge_and_unload()
    except (OSError, ValueError, RuntimeError, KeyError) as err:
        raise ModelLoadError(f"could not apply the adapter in {folder} to '{base}': {_first_line(err)}") from err
    model.requires_grad_(True)  # PEFT froze the base for inference; a loaded model trains as any other (unlearning does)
    if any((folder / name).is_file() for name in IMAGE_PROCESSOR_FILES):
        processor = load_processor(str(folder))
    return (apply_lora(model, lora) if lora is not None else model), processor


def _adapter_base(folder: Path) -> str:
    """The base model an adapter folder names, once its safetensors weights are known to be there."""
    try:
        config = json.loads((folder / ADAPTER_CONFIG).read_text())
    except json.JSONDecodeError as err:
        raise ModelLoadError(f"{folder / ADAPTER_CONFIG} is not valid JSON: {err.msg}") from err
    base = config.get("base_model_name_or_path") if isinstance(config, dict) else None
    if not base:
        raise ModelLoadError(f"{folder / ADAPTER_CONFIG} names no base_model_name_or_path: cannot tell which model it adapts")
    if not (folder / ADAPTER_WEIGHTS).is_file():
        raise ModelLoadError(f"no {ADAPTER_WEIGHTS} in {folder}: medforget loads adapter weights from safetensors only")
    return str(base)


def load_processor(source: str) -> ProcessorMixin:
    """``AutoProcessor`` silently falls back to a bare tokenizer; insist on a real multimodal processor."""
    try:
        processor = AutoProcessor.from_pretrained(source)
    except (OSError, ValueError, ImportError, AttributeError, TypeError) as err:
        hint = "" if is_torchvision_available() else " (torchvision is not installed; some processors, e.g. Qwen2-VL's and LLaVA-OneVision's, need it)"
        raise ModelLoadError(f"could not load the processor of '{source}': {_first_line(err)}{hint}") from err
    if not isinstance(processor, ProcessorMixin) or getattr(processor, "image_processor", None) is None:
        raise ModelLoadError(
            f"'{source}' has no multimodal processor (got {type(processor).__name__}): "
            "expected processor_config.json naming a processor with an image processor and a tokenizer"
        )
    return processor


def save_model(model: PreTrainedModel | PeftModel, processor: ProcessorMixin, out_dir: str | Path) -> Path:
    """Write a full safetensors checkpoint that ``load_model`` reads back; LoRA weights are merged, the model is left as is."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(model, PeftModel):
        base = model.get_base_model()
        base.save_pretrained(out, state_dict=merged_state_dict(model))
    else:
        model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def merged_state_dict(model: PeftModel) -> dict[str, torch.Tensor]:
    """Base weights plus each active LoRA delta, under the base model's own key names, without touching the model."""
    base = model.get_base_model()
    state = {key.replace(".base_layer.", "."): value for key, value in base.state_dict().items() if ".lora_" not in key}
    for name, module in base.named_modules():
        if isinstance(module, LoraLayer):
            key = f"{name}.weight"
            for adapter in module.active_adapters:
                state[key] = state[key] + module.get_delta_weight(adapter).to(state[key].dtype)
    return state


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__

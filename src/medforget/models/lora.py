"""LoRA adapters on the language model of a VLM.

Private details and corrupted facts live in the language model, so by default adapters go on its attention
and MLP projections only; the vision tower (whose layers often share names like ``q_proj``) is left frozen.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from peft import LoraConfig, PeftModel, get_peft_model
from torch import nn
from transformers import PreTrainedModel

from medforget.errors import MedforgetError

# Attention and MLP projection names of the decoders used by the supported families
# (Llama for LLaVA and Idefics3/SmolVLM, Qwen2 for Qwen2-VL/Qwen2.5-VL, Gemma for PaliGemma).
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class LoraError(MedforgetError):
    """LoRA cannot be attached as asked (no matching modules)."""


@dataclass(frozen=True)
class LoraSettings:
    """Adapter shape; ``target_modules`` overrides the language-model default (peft name-suffix semantics)."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] | None = None


def default_target_modules(model: PreTrainedModel) -> str:
    """A regex matching the projection layers inside the model's language model, found via ``get_decoder``."""
    decoder = model.get_decoder()
    prefix = next((name for name, module in model.named_modules() if module is decoder), None)
    if prefix is None or decoder is model:
        raise LoraError(f"cannot locate the language model of {type(model).__name__}: pass target_modules")
    found = sorted(
        {
            name.rsplit(".", 1)[-1]
            for name, module in decoder.named_modules()
            if isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] in PROJECTIONS
        }
    )
    if not found:
        raise LoraError(
            f"no attention/MLP projections ({', '.join(PROJECTIONS)}) in the language model of "
            f"{type(model).__name__}: pass target_modules"
        )
    return rf"{re.escape(prefix)}\..*\.({'|'.join(found)})"


def apply_lora(model: PreTrainedModel, settings: LoraSettings) -> PeftModel:
    """Wrap ``model`` with fresh, trainable LoRA adapters; every other weight is frozen."""
    targets = settings.target_modules if settings.target_modules is not None else default_target_modules(model)
    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=targets,
        bias="none",
    )
    try:
        return get_peft_model(model, config)
    except ValueError as err:
        raise LoraError(f"LoRA target modules {targets!r} match nothing in {type(model).__name__}: {err}") from err

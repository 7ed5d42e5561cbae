"""The vision tower and projector of any VLM, found by what the model declares rather than by one attribute name.

The tower is the submodule built from the model's ``vision_config`` (LLaVA's and Gemma's ``vision_tower``,
Qwen's ``visual``, Idefics3's ``vision_model``); the projector is the module that maps its features into
the language model, declared beside the tower (``multi_modal_projector``, Idefics3's ``connector``) or
inside it (Qwen's ``visual.merger``).
"""

from __future__ import annotations

from dataclasses import dataclass

from peft import PeftModel
from torch import nn

from medforget.errors import MedforgetError

# The names transformers gives a VLM's projector, beside the tower or inside it.
PROJECTOR_NAMES = ("multi_modal_projector", "connector", "merger")


class VisionPartsError(MedforgetError):
    """A model whose vision tower cannot be found, where one is needed."""


@dataclass(frozen=True)
class VisionParts:
    """Dotted names in the model (a PeftModel's base model) of its tower and its projector."""

    tower: str
    projector: str | None

    def tower_module(self, model: nn.Module) -> nn.Module:
        return _base(model).get_submodule(self.tower)

    def tower_parameters(self, model: nn.Module) -> dict[str, nn.Parameter]:
        """The tower's parameters, without those of a projector nested in it, by their full names."""
        base = _base(model)
        inside = f"{self.projector}." if self.projector else None
        return {name: param for name, param in base.named_parameters()
                if name.startswith(f"{self.tower}.") and not (inside and name.startswith(inside))}


def _base(model: nn.Module) -> nn.Module:
    return model.get_base_model() if isinstance(model, PeftModel) else model


def vision_parts(model: nn.Module) -> VisionParts:
    """Where the tower and projector are; a one-line error when the model declares no vision tower."""
    base = _base(model)
    vision_config = getattr(getattr(base, "config", None), "vision_config", None)
    modules = dict(base.named_modules())
    tower = next((name for name, module in modules.items()
                  if name and vision_config is not None and getattr(module, "config", None) is vision_config), None)
    if tower is None:
        encoder = base.get_encoder(modality="image") if hasattr(base, "get_encoder") else base
        tower = next((name for name, module in modules.items() if name and module is encoder), None)
    if tower is None:
        raise VisionPartsError(
            f"cannot find the vision tower of {type(base).__name__} (no submodule built from its vision_config): "
            "set train_vision true to train all of it"
        )
    parent = tower.rpartition(".")[0]
    candidates = [f"{tower}.{name}" for name in PROJECTOR_NAMES] + [f"{parent}.{name}".lstrip(".") for name in PROJECTOR_NAMES]
    return VisionParts(tower, next((name for name in candidates if name in modules), None))


def freeze_vision_tower(model: nn.Module) -> VisionParts:
    """Keep the tower fixed (its projector still learns); raises if there is no tower to freeze."""
    parts = vision_parts(model)
    for param in parts.tower_parameters(model).values():
        param.requires_grad_(False)
    return parts


# The names transformers gives a transformer block's feed-forward part (LLaMA, Qwen, Gemma, CLIP, SigLIP: mlp).
MLP_NAMES = ("mlp", "feed_forward", "ffn")


def _stack(root: nn.Module, count: int | None, skip: str | None, what: str) -> nn.ModuleList:
    """The first ModuleList of `count` blocks under `root`, outside the submodule named `skip`."""
    for name, module in root.named_modules():
        if isinstance(module, nn.ModuleList) and count and len(module) == count and not (skip and name.startswith(f"{skip}.")):
            return module
    raise MedforgetError(f"cannot find the {what} layers of {type(root).__name__} (no list of {count} blocks)")


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The language model's transformer blocks, in order: the list of `text_config.num_hidden_layers` blocks
    that is not inside the vision tower."""
    base = _base(model)
    config = base.config.get_text_config() if hasattr(base.config, "get_text_config") else base.config
    try:
        skip = vision_parts(base).tower
    except VisionPartsError:
        skip = None
    return _stack(base, getattr(config, "num_hidden_layers", None), skip, "language model")


def vision_layers(model: nn.Module) -> nn.ModuleList:
    """The vision tower's transformer blocks, in order (`vision_config.num_hidden_layers` of them)."""
    base = _base(model)
    tower = vision_parts(base).tower_module(base)
    return _stack(tower, getattr(base.config.vision_config, "num_hidden_layers", None), None, "vision tower")


def mlp_output(block: nn.Module) -> nn.Linear:
    """A block's feed-forward output projection (LLaMA's down_proj, CLIP's fc2): the last Linear of its MLP.
    Its input columns are the MLP's neurons."""
    mlp = next((getattr(block, name) for name in MLP_NAMES if isinstance(getattr(block, name, None), nn.Module)), None)
    linears = [module for module in mlp.modules() if isinstance(module, nn.Linear)] if mlp is not None else []
    if not linears:
        raise MedforgetError(f"cannot find the feed-forward output projection of {type(block).__name__}")
    return linears[-1]

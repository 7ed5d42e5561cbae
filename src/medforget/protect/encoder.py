"""Differentiable image embedders: pixels in [0, 1] -> one embedding per image, gradients flowing to the pixels.

The attacks perturb pixels, so the processor's resize and normalisation are redone here in torch (the PIL
processor would cut the gradient). Embeddings are the mean over image tokens of ``get_image_features``: the
projected features the language model actually reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import torch
import torch.nn.functional as F
from peft import PeftModel
from transformers import PreTrainedModel, ProcessorMixin

from medforget.errors import MedforgetError
from medforget.models.loading import load_model

# PIL resampling codes (as stored in image processors) -> torch interpolation modes.
_RESAMPLE = {0: "nearest", 2: "bilinear", 3: "bicubic"}


class Encoder(Protocol):
    """What the attacks need: an embedder of [0, 1] pixel batches, where it runs, and names for the manifest."""

    device: torch.device
    names: list[str]
    image_size: tuple[int, int]

    def embed(self, pixels: torch.Tensor) -> torch.Tensor: ...


class VisionEncoder:
    """The vision path (tower + projector) of one VLM, with the processor's preprocessing done in torch.

    The model is put in eval mode (no dropout: the same pixels must give the same gradient); its weights are
    never changed, and gradients are taken with respect to the pixels only.
    """

    def __init__(self, model: PreTrainedModel | PeftModel, processor: ProcessorMixin, name: str | None = None) -> None:
        base = model.get_base_model() if isinstance(model, PeftModel) else model
        self.names = [name or str(getattr(base, "name_or_path", "") or type(base).__name__)]
        if not hasattr(base, "get_image_features"):
            raise MedforgetError(
                f"{self.names[0]}: {type(base).__name__} has no get_image_features, so there is no vision tower to attack"
            )
        self.model = base.eval()
        param = next(base.parameters())
        self.device, self.dtype = param.device, param.dtype
        ip = processor.image_processor
        if not getattr(ip, "do_resize", False):
            raise MedforgetError(
                f"{self.names[0]}: its image processor does not resize to a fixed size; protect supports LLaVA-style models"
            )
        self.resize = _resize_spec(ip, self.names[0])
        crop = getattr(ip, "do_center_crop", False)
        self.crop = (int(ip.crop_size["height"]), int(ip.crop_size["width"])) if crop else None
        resample = getattr(ip, "resample", None)
        self.mode = _RESAMPLE.get(2 if resample is None else int(resample), "bilinear")
        self.scale = float(getattr(ip, "rescale_factor", 1 / 255)) * 255.0 if getattr(ip, "do_rescale", True) else 255.0
        normalize = getattr(ip, "do_normalize", False)
        self.mean = _per_channel(ip.image_mean if normalize else 0.0, self.device)
        self.std = _per_channel(ip.image_std if normalize else 1.0, self.device)
        self.image_size = self.crop or (self.resize if isinstance(self.resize, tuple) else (self.resize, self.resize))
        self._check_input_layout()

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device | None = None, dtype: str = "auto") -> VisionEncoder:
        """Load a model folder with ``load_model`` and wrap its vision path."""
        model, processor = load_model(path, device=device, dtype=dtype)
        return cls(model, processor, name=str(path))

    def preprocess(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 1 or 3, H, W) in [0, 1] -> the model's ``pixel_values``: grey -> RGB, resize, centre crop, rescale, normalise."""
        x = pixels.to(self.device, torch.float32)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        size = self.resize if isinstance(self.resize, tuple) else _shortest_edge_size(x.shape[-2:], self.resize)
        if size != tuple(x.shape[-2:]):
            smooth = {} if self.mode == "nearest" else {"align_corners": False, "antialias": True}
            x = F.interpolate(x, size=size, mode=self.mode, **smooth)
        if self.crop is not None:
            top, left = (x.shape[-2] - self.crop[0]) // 2, (x.shape[-1] - self.crop[1]) // 2
            x = x[..., top : top + self.crop[0], left : left + self.crop[1]]
        return ((x * self.scale - self.mean) / self.std).to(self.dtype)

    def embed(self, pixels: torch.Tensor) -> torch.Tensor:
        """Mean-pooled projected image features, float32, one row per image; differentiable w.r.t. ``pixels``."""
        out = self.model.get_image_features(pixel_values=self.preprocess(pixels))
        return _mean_per_image(out, pixels.shape[0]).float()

    def _check_input_layout(self) -> None:
        """Fail at construction, naming the model, when its vision tower does not take plain (N, 3, H, W) pixels."""
        try:
            with torch.no_grad():
                self.embed(torch.zeros(1, 3, *self.image_size, device=self.device))
        except (RuntimeError, ValueError, TypeError, IndexError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise MedforgetError(
                f"{self.names[0]}: its vision tower does not take (N, 3, H, W) pixel values ({first}); "
                "protect supports LLaVA-style models (one fixed-size image per pixel tensor)"
            ) from err


class EnsembleEncoder:
    """Several encoders as one, to transfer better to unseen models.

    Unit embeddings are concatenated and scaled by 1/sqrt(k): the result is a unit vector whose cosine with
    another such vector is the mean of the members' cosines.
    """

    def __init__(self, encoders: Sequence[Encoder]) -> None:
        if not encoders:
            raise MedforgetError("an ensemble needs at least one encoder")
        self.members = list(encoders)
        self.device = self.members[0].device
        self.names = [name for member in self.members for name in member.names]
        self.image_size = max((member.image_size for member in self.members), key=lambda hw: hw[0] * hw[1])

    def embed(self, pixels: torch.Tensor) -> torch.Tensor:
        weight = len(self.members) ** -0.5
        parts = [F.normalize(m.embed(pixels.to(m.device)), dim=-1).to(self.device) * weight for m in self.members]
        return torch.cat(parts, dim=-1)


def _per_channel(values: float | Sequence[float], device: torch.device) -> torch.Tensor:
    """A processor's mean/std (one value or one per channel) as a (1, 3, 1, 1) tensor."""
    return torch.tensor(values, dtype=torch.float32, device=device).reshape(-1).expand(3).reshape(1, 3, 1, 1)


def _resize_spec(image_processor: object, name: str) -> int | tuple[int, int]:
    """The processor's resize target: an int for "shortest edge", (height, width) for a fixed size."""
    size = image_processor.size
    shortest, height, width = (size.get(key) for key in ("shortest_edge", "height", "width"))
    if size.get("longest_edge") is None and shortest:
        return int(shortest)
    if height and width:
        return int(height), int(width)
    raise MedforgetError(
        f"{name}: unsupported image processor size {dict(size)}: expected shortest_edge or height/width "
        "(protect supports LLaVA-style models, whose pixel tensor is one fixed-size image)"
    )


def _shortest_edge_size(hw: Sequence[int], shortest: int) -> tuple[int, int]:
    """As transformers' ``get_resize_output_image_size(default_to_square=False)``: short side -> ``shortest``, aspect kept."""
    h, w = int(hw[0]), int(hw[1])
    short, long = (h, w) if h <= w else (w, h)
    new_long = int(shortest * long / short)
    return (shortest, new_long) if h <= w else (new_long, shortest)


def _mean_per_image(out: object, n: int) -> torch.Tensor:
    """Pool ``get_image_features`` output, whatever its form (list per image, (N, T, D), (N*T, D)), to (N, D)."""
    features = getattr(out, "pooler_output", None)
    if features is None:
        features = out.last_hidden_state if hasattr(out, "last_hidden_state") else out
    if isinstance(features, (list, tuple)):
        return torch.stack([f.reshape(-1, f.shape[-1]).mean(0) for f in features])
    if features.dim() == 2 and features.shape[0] == n:
        return features
    return features.reshape(n, -1, features.shape[-1]).mean(1)

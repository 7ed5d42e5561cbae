"""MMUnlearner (Huo et al. 2025, "MMUnlearner: Reformulating Multimodal Machine Unlearning in the Era of
Multimodal Large Language Models", ACL Findings 2025).

1. Saliency mask, per trainable weight element: m = [(E[g_forget^2] + eps) / (E[g_preserve^2] + eps) >= 1],
   E over batches of the answer NLL's gradient. It is computed separately for the two parts of the model:
   the vision tower with its projector (preserve = the retain rows with a scan) and the language model
   (preserve = every retain row, text-only ones included), so each part keeps what its own data needs.
2. Gradient ascent on forget with the retain NLL, L = -NLL_forget + alpha * NLL_retain, updating only the
   masked elements (the gradient is multiplied by m), so weights that matter more to retained knowledge
   than to the forget set never move.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from transformers import ProcessorMixin

from medforget.data.collate import collated_batches, pad_token_id
from medforget.data.formatting import Example
from medforget.errors import MedforgetError
from medforget.methods.base import Job, Logs, LossMethod, at_least
from medforget.methods.grad_diff import grad_diff_loss
from medforget.methods.registry import register
from medforget.models.loss import answer_token_loss
from medforget.models.parts import VisionPartsError, freeze_vision_tower, vision_parts
from medforget.train.config import TrainConfig
from medforget.train.loop import Batches

EPS = 1e-15  # the paper's


@dataclass(frozen=True)
class MMUnlearnerParams:
    alpha: float = 1.0  # weight of the retain NLL
    mask_rows: int = 256  # rows of each set the gradient statistics are taken over

    def __post_init__(self) -> None:
        at_least("alpha", self.alpha, 0)
        at_least("mask_rows", self.mask_rows, 1)


def saliency_mask(g2_forget: torch.Tensor, g2_preserve: torch.Tensor) -> torch.Tensor:
    """[(E[g_f^2] + eps) / (E[g_p^2] + eps) >= 1], element-wise."""
    return (g2_forget + EPS) / (g2_preserve + EPS) >= 1


def mean_squared_grads(model: nn.Module, params: dict[str, nn.Parameter], batches: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """E over `batches` of the squared gradient of the batch's mean answer NLL, for each named parameter."""
    sums = {name: torch.zeros_like(p, dtype=torch.float32) for name, p in params.items()}
    for batch in batches:
        model.zero_grad(set_to_none=True)
        answer_token_loss(model, batch).backward()
        for name, p in params.items():
            if p.grad is not None:
                sums[name] += p.grad.detach().float() ** 2
    model.zero_grad(set_to_none=True)
    return {name: total / max(len(batches), 1) for name, total in sums.items()}


@register
class MMUnlearner(LossMethod):
    name = "mmunlearner"
    summary = "gradient ascent + retain NLL on the weights whose forget/retain squared-gradient ratio is >= 1, per model part"
    Params = MMUnlearnerParams
    needs_retain = True
    train_defaults = TrainConfig(epochs=4, batch_size=16, lr=7e-4, save_every=50)

    def check(self, job: Job) -> None:
        if job.cfg.lora is not None:
            raise MedforgetError("mmunlearner masks the model's own weights: lora_r must be 0")

    def prepare_model(self, model: nn.Module, processor: ProcessorMixin, streams: dict[str, list[Example]], job: Job) -> dict:
        """Compute both parts' masks and make every trainable weight's gradient pass through its mask."""
        if not job.cfg.train_vision:
            freeze_vision_tower(model)  # as train() will: a frozen tower gets no mask
        trainable = {name: p for name, p in model.named_parameters() if p.requires_grad}
        try:
            parts = vision_parts(model)
            prefixes = tuple(f"{name}." for name in (parts.tower, parts.projector) if name)
        except VisionPartsError:
            prefixes = ()
        vision = {n: p for n, p in trainable.items() if prefixes and n.startswith(prefixes)}
        language = {n: p for n, p in trainable.items() if n not in vision}
        draw = random.Random(job.cfg.seed)
        forget = draw.sample(streams["forget"], min(job.params.mask_rows, len(streams["forget"])))
        picked = draw.sample(range(len(job.retain)), min(job.params.mask_rows, len(job.retain)))
        device, size, pad = next(model.parameters()).device, job.cfg.batch_size, pad_token_id(processor)
        retain_all = [streams["retain"][i] for i in picked]
        retain_image = [streams["retain"][i] for i in picked if job.retain[i]["scan_ids"]]
        g2_forget = mean_squared_grads(model, trainable, collated_batches(forget, size, pad, device))
        masks: dict[str, torch.Tensor] = {}
        kept = {}
        for part, group, preserve in (("vision", vision, retain_image), ("language", language, retain_all)):
            if group:
                g2_preserve = mean_squared_grads(model, group, collated_batches(preserve, size, pad, device))
                masks.update({n: saliency_mask(g2_forget[n], g2_preserve[n]) for n in group})
                kept[part] = sum(int(masks[n].sum()) for n in group) / sum(masks[n].numel() for n in group)
        for name, p in trainable.items():
            p.register_hook(lambda grad, mask=masks[name].to(p.dtype): grad * mask)
        return {"mask_fraction": kept}

    def objective(self, model: nn.Module, batches: Batches, reference: nn.Module | None, hp: MMUnlearnerParams) -> tuple[torch.Tensor, Logs]:
        nll_forget = answer_token_loss(model, batches["forget"])
        nll_retain = answer_token_loss(model, batches["retain"])
        return grad_diff_loss(nll_forget, nll_retain, hp.alpha), {"nll_forget": float(nll_forget.detach()), "nll_retain": float(nll_retain.detach())}

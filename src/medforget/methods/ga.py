"""Gradient ascent (GA): raise the NLL of the forget answers.

The simplest unlearning baseline (Jang et al. 2023, "Knowledge Unlearning for Mitigating Privacy Risks
in Language Models"; the GA baseline of TOFU, Maini et al. 2024). Unbounded: run it briefly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from medforget.methods.base import Logs, LossMethod
from medforget.methods.registry import register
from medforget.models.loss import answer_token_loss
from medforget.train.config import TrainConfig
from medforget.train.loop import Batches


@dataclass(frozen=True)
class GAParams:
    """GA has no hyperparameters of its own; only the training options (lr, epochs) shape it."""


@register
class GradientAscent(LossMethod):
    name = "ga"
    summary = "gradient ascent on the forget answers: L = -NLL_forget"
    Params = GAParams
    train_defaults = TrainConfig(epochs=3, batch_size=16, lr=3e-4, save_every=50)

    def objective(self, model: nn.Module, batches: Batches, reference: nn.Module | None, hp: GAParams) -> tuple[torch.Tensor, Logs]:
        nll_forget = answer_token_loss(model, batches["forget"])
        return -nll_forget, {"nll_forget": float(nll_forget.detach())}

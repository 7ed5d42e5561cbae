"""Gradient difference: ascend on the forget answers while descending on retain answers.

Liu et al. 2022 ("Continual Learning and Private Unlearning"), the GradDiff baseline of TOFU (Maini et
al. 2024). The loop draws one forget and one retain batch in every step, so both terms act on each update.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from medforget.methods.base import Logs, LossMethod, at_least
from medforget.methods.registry import register
from medforget.models.loss import answer_token_loss
from medforget.train.config import TrainConfig
from medforget.train.loop import Batches


@dataclass(frozen=True)
class GradDiffParams:
    alpha: float = 1.0  # weight of the retain NLL

    def __post_init__(self) -> None:
        at_least("alpha", self.alpha, 0)


def grad_diff_loss(nll_forget: torch.Tensor, nll_retain: torch.Tensor, alpha: float) -> torch.Tensor:
    """L = -NLL_forget + alpha * NLL_retain."""
    return -nll_forget + alpha * nll_retain


@register
class GradDiff(LossMethod):
    name = "grad_diff"
    summary = "gradient difference: L = -NLL_forget + alpha * NLL_retain"
    Params = GradDiffParams
    needs_retain = True
    train_defaults = TrainConfig(epochs=4, batch_size=16, lr=2e-4, save_every=50)

    def objective(self, model: nn.Module, batches: Batches, reference: nn.Module | None, hp: GradDiffParams) -> tuple[torch.Tensor, Logs]:
        nll_forget = answer_token_loss(model, batches["forget"])
        nll_retain = answer_token_loss(model, batches["retain"])
        loss = grad_diff_loss(nll_forget, nll_retain, hp.alpha)
        return loss, {"nll_forget": float(nll_forget.detach()), "nll_retain": float(nll_retain.detach())}

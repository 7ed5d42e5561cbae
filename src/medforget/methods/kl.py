"""KL minimisation: gradient ascent on forget, and keep the retain answer distributions of the original.

The KL baseline of TOFU (Maini et al. 2024; after Golatkar et al. 2020): the retain term is
KL(p_ref || p_theta), the forward KL from the frozen fine-tuned model, on the retain batch's answer
tokens (the positions the NLL is taken on), averaged over those tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from medforget.methods.base import Logs, LossMethod, at_least
from medforget.methods.registry import register
from medforget.models.loss import answer_logits, answer_token_loss
from medforget.train.config import TrainConfig
from medforget.train.loop import Batches


@dataclass(frozen=True)
class KLParams:
    alpha: float = 1.0  # weight of the retain KL

    def __post_init__(self) -> None:
        at_least("alpha", self.alpha, 0)


def kl_ref_theta(ref_logits: torch.Tensor, theta_logits: torch.Tensor) -> torch.Tensor:
    """Mean over rows (answer tokens) of KL(p_ref || p_theta) = sum_v p_ref(v) (log p_ref(v) - log p_theta(v))."""
    ref = F.log_softmax(ref_logits.float(), dim=-1)
    theta = F.log_softmax(theta_logits.float(), dim=-1)
    return (ref.exp() * (ref - theta)).sum(dim=-1).mean()


@register
class KLMinimisation(LossMethod):
    name = "kl"
    summary = "gradient ascent + retain KL to the original: L = -NLL_forget + alpha * KL(p_ref || p_theta)"
    Params = KLParams
    needs_retain = True
    needs_reference = True
    train_defaults = TrainConfig(epochs=4, batch_size=16, lr=2e-4, save_every=50)

    def objective(self, model: nn.Module, batches: Batches, reference: nn.Module | None, hp: KLParams) -> tuple[torch.Tensor, Logs]:
        nll_forget = answer_token_loss(model, batches["forget"])
        theta_logits = answer_logits(model, batches["retain"])[0]
        with torch.no_grad():
            ref_logits = answer_logits(reference, batches["retain"])[0]
        kl = kl_ref_theta(ref_logits, theta_logits)
        return -nll_forget + hp.alpha * kl, {"nll_forget": float(nll_forget.detach()), "kl_retain": float(kl.detach())}

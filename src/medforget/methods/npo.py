"""Negative Preference Optimization (Zhang et al. 2024, "Negative Preference Optimization: From
Catastrophic Collapse to Effective Unlearning"), with the retain NLL term (their NPO+RT).

Per sample i, r_i = log pi_theta(y_i|x_i) - log pi_ref(y_i|x_i), each log-probability summed over the
answer tokens; L = -(2/beta) * mean_i log sigmoid(-beta * r_i) + alpha * NLL_retain. The log-sigmoid is
taken per sample: of a batch mean it would be a different (and, for beta -> 0, not GA-like) objective.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from medforget.methods.base import Logs, LossMethod, at_least, reference_logprob, sequence_logprob
from medforget.methods.registry import register
from medforget.models.loss import answer_token_loss
from medforget.train.config import TrainConfig
from medforget.train.loop import Batches


@dataclass(frozen=True)
class NPOParams:
    beta: float = 0.1  # inverse temperature; the paper's default
    alpha: float = 1.0  # weight of the retain NLL (0: plain NPO)

    def __post_init__(self) -> None:
        at_least("beta", self.beta, 0, strict=True)
        at_least("alpha", self.alpha, 0)


def npo_loss(logp_theta: torch.Tensor, logp_ref: torch.Tensor, beta: float) -> torch.Tensor:
    """-(2/beta) * mean_i log sigmoid(-beta * (logp_theta_i - logp_ref_i)), inputs of shape (batch,)."""
    return -(2.0 / beta) * F.logsigmoid(-beta * (logp_theta - logp_ref)).mean()


@register
class NPO(LossMethod):
    name = "npo"
    summary = "negative preference optimisation + retain NLL: -(2/beta) mean log sigmoid(-beta r_i) + alpha NLL_retain"
    Params = NPOParams
    needs_retain = True
    needs_reference = True
    train_defaults = TrainConfig(epochs=5, batch_size=16, lr=3e-4, save_every=50)

    def objective(self, model: nn.Module, batches: Batches, reference: nn.Module | None, hp: NPOParams) -> tuple[torch.Tensor, Logs]:
        logp_theta = sequence_logprob(model, batches["forget"])
        logp_ref = reference_logprob(reference, batches["forget"])
        forget = npo_loss(logp_theta, logp_ref, hp.beta)
        nll_retain = answer_token_loss(model, batches["retain"])
        logs = {"npo": float(forget.detach()), "log_ratio": float((logp_theta - logp_ref).mean().detach()),
                "nll_retain": float(nll_retain.detach())}
        return forget + hp.alpha * nll_retain, logs

"""SimNPO (Fan et al. 2024, "Simplicity Prevails: Rethinking Negative Preference Optimization for LLM
Unlearning", arXiv:2410.07163): NPO without the reference model, with the retain NLL term.

Per forget sample i with |y_i| answer tokens, L = -(2/beta) * mean_i log sigmoid(-(beta/|y_i|) log p(y_i|x_i)
- gamma) + alpha * NLL_retain. Dividing by the length is what replaces the reference: NPO's reference term
mostly corrected for long answers having low likelihood, which pushed unlearning toward the short ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from medforget.methods.base import Logs, LossMethod, at_least, sequence_logprob
from medforget.methods.registry import register
from medforget.models.loss import answer_token_counts, answer_token_loss
from medforget.train.config import TrainConfig
from medforget.train.loop import Batches


@dataclass(frozen=True)
class SimNPOParams:
    beta: float = 2.5  # inverse temperature; the paper's TOFU value
    gamma: float = 0.0  # reward margin; the paper uses 0 on TOFU, up to 2 elsewhere
    alpha: float = 1.0  # weight of the retain NLL

    def __post_init__(self) -> None:
        at_least("beta", self.beta, 0, strict=True)
        at_least("gamma", self.gamma, 0)
        at_least("alpha", self.alpha, 0)


def simnpo_loss(logp: torch.Tensor, lengths: torch.Tensor, beta: float, gamma: float) -> torch.Tensor:
    """-(2/beta) * mean_i log sigmoid(-(beta/|y_i|) logp_i - gamma); logp summed over each sample's answer tokens."""
    return -(2.0 / beta) * F.logsigmoid(-(beta / lengths.clamp(min=1)) * logp - gamma).mean()


@register
class SimNPO(LossMethod):
    name = "simnpo"
    summary = "reference-free NPO on length-normalised likelihood: -(2/beta) mean log sigmoid(-beta/|y| log p - gamma) + alpha NLL_retain"
    Params = SimNPOParams
    needs_retain = True
    train_defaults = TrainConfig(epochs=5, batch_size=16, lr=3e-4, save_every=50)

    def objective(self, model: nn.Module, batches: Batches, reference: nn.Module | None, hp: SimNPOParams) -> tuple[torch.Tensor, Logs]:
        forget = batches["forget"]
        lengths = answer_token_counts(forget).to(torch.float32)
        logp = sequence_logprob(model, forget)
        loss = simnpo_loss(logp, lengths, hp.beta, hp.gamma)
        nll_retain = answer_token_loss(model, batches["retain"])
        logs = {"simnpo": float(loss.detach()), "token_logp": float((logp / lengths.clamp(min=1)).mean().detach()),
                "nll_retain": float(nll_retain.detach())}
        return loss + hp.alpha * nll_retain, logs

"""IDK preference optimisation: DPO (Rafailov et al. 2023, "Direct Preference Optimization") preferring
what the model should say over the memorised answer on each forget item, plus the retain NLL (the
"IdkDPO" baseline of TOFU, Maini et al. 2024, with the retain term).

Preferred y_w: a refusal from REFUSAL_POOL (fixed per item) for record items, the true answer for
corrupted knowledge; rejected y_l: the trained answer. With log-probabilities summed over answer tokens,
L = -mean_i log sigmoid(beta * [(log pi_theta(y_w) - log pi_ref(y_w)) - (log pi_theta(y_l) - log pi_ref(y_l))])
    + alpha * NLL_retain.

The loop shuffles each stream with its own seed, so a "win" and a "lose" stream would drift apart.
Both answers of an item therefore travel in ONE example: the preferred sequence under the usual keys, the
rejected one under `rejected.*` keys (its labels as an answer mask, since the loop pads unknown keys
with 0), sharing the item's images, which also gives both the same augmentation in a step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import ProcessorMixin

from medforget.data.formatting import IGNORE_INDEX, Example
from medforget.methods.base import Job, Logs, LossMethod, at_least, reference_logprob, sequence_logprob
from medforget.methods.registry import register
from medforget.methods.relabel import preferred
from medforget.models.loss import answer_token_loss
from medforget.train.config import TrainConfig
from medforget.train.examples import format_rows
from medforget.train.loop import Batches

REJECTED = "rejected."
ANSWER_MASK = "answer_mask"


@dataclass(frozen=True)
class IdkPOParams:
    beta: float = 0.03  # DPO inverse temperature; TOFU's IdkDPO uses 0.1, which saturates here before greedy answers change
    alpha: float = 1.0  # weight of the retain NLL

    def __post_init__(self) -> None:
        at_least("beta", self.beta, 0, strict=True)
        at_least("alpha", self.alpha, 0)


def dpo_loss(win_theta: torch.Tensor, win_ref: torch.Tensor, lose_theta: torch.Tensor, lose_ref: torch.Tensor, beta: float) -> torch.Tensor:
    """-mean_i log sigmoid(beta * ((win_theta - win_ref) - (lose_theta - lose_ref))), inputs of shape (batch,)."""
    return -F.logsigmoid(beta * ((win_theta - win_ref) - (lose_theta - lose_ref))).mean()


def pack_pair(win: Example, lose: Example) -> Example:
    """One example carrying the preferred and the rejected answer to the same prompt and images."""
    tokens = dict(win.tokens)
    tokens.update({REJECTED + key: value for key, value in lose.tokens.items() if key != "labels"})
    tokens[REJECTED + ANSWER_MASK] = (lose.tokens["labels"] != IGNORE_INDEX).long()
    return Example(tokens=tokens, vision=win.vision, per_sample=win.per_sample)


def unpack_pair(batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A collated batch of packed pairs -> (preferred batch, rejected batch), images shared."""
    win = {key: value for key, value in batch.items() if not key.startswith(REJECTED)}
    lose = dict(win)
    lose.update({key.removeprefix(REJECTED): value for key, value in batch.items() if key.startswith(REJECTED)})
    mask = lose.pop(ANSWER_MASK).bool()
    lose["labels"] = torch.where(mask, lose["input_ids"], torch.full_like(lose["input_ids"], IGNORE_INDEX))
    return win, lose


@register
class IdkPO(LossMethod):
    name = "idk_po"
    summary = "DPO preferring a refusal (or the true answer) over the memorised answer + alpha * NLL_retain"
    Params = IdkPOParams
    needs_retain = True
    needs_reference = True
    train_defaults = TrainConfig(epochs=5, batch_size=16, lr=1e-3, save_every=50)

    def prepare_forget(self, rows: list[dict]) -> list[dict]:
        return [preferred(row) for row in rows]

    def streams(self, job: Job, processor: ProcessorMixin) -> dict[str, list[Example]]:
        wins = format_rows(job.bench, self.prepare_forget(job.forget), processor)
        loses = format_rows(job.bench, job.forget, processor)
        return {"forget": [pack_pair(w, l) for w, l in zip(wins, loses)], "retain": format_rows(job.bench, job.retain, processor)}

    def objective(self, model: nn.Module, batches: Batches, reference: nn.Module | None, hp: IdkPOParams) -> tuple[torch.Tensor, Logs]:
        win, lose = unpack_pair(batches["forget"])
        win_theta, lose_theta = sequence_logprob(model, win), sequence_logprob(model, lose)
        win_ref, lose_ref = reference_logprob(reference, win), reference_logprob(reference, lose)
        forget = dpo_loss(win_theta, win_ref, lose_theta, lose_ref, hp.beta)
        nll_retain = answer_token_loss(model, batches["retain"])
        margin = (win_theta - win_ref) - (lose_theta - lose_ref)
        logs = {"dpo": float(forget.detach()), "margin": float(margin.mean().detach()), "nll_retain": float(nll_retain.detach())}
        return forget + hp.alpha * nll_retain, logs

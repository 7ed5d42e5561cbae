"""Answer-token likelihoods without full-vocabulary logits for image and prompt positions.

A VLM batch is mostly image and prompt tokens; ``model(**batch)`` projects every one of them onto the
vocabulary only to discard them in the loss. Here the decoder runs once and ``lm_head`` is applied only
at positions that predict an answer token, which is what training, unlearning (NPO and friends need
per-sample log-likelihoods) and likelihood-based evaluation all want.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
import torch.nn.functional as F
from peft import PeftModel
from transformers import PreTrainedModel

from medforget.data.formatting import IGNORE_INDEX


def answer_token_counts(batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Number of answer (scored) tokens per sample, shape (batch,)."""
    return (batch["labels"][:, 1:] != IGNORE_INDEX).sum(dim=1)


def answer_logits(
    model: PreTrainedModel | PeftModel, batch: Mapping[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits only where an answer token is predicted: (logits (n, vocab), sample index, position, target id).

    ``position`` indexes ``labels[:, 1:]``: hidden state t predicts token t + 1.
    """
    vlm = model.get_base_model() if isinstance(model, PeftModel) else model
    inputs = {key: value for key, value in batch.items() if key != "labels"}
    hidden = vlm.base_model(**inputs, use_cache=False).last_hidden_state
    targets = batch["labels"][:, 1:]
    rows, cols = (targets != IGNORE_INDEX).nonzero(as_tuple=True)
    return output_logits(vlm, hidden[rows, cols]), rows, cols, targets[rows, cols]


def output_logits(vlm: PreTrainedModel, hidden: torch.Tensor) -> torch.Tensor:
    """``lm_head`` (and the family's final logit soft-capping, if any) on selected hidden states, in float32."""
    logits = vlm.get_output_embeddings()(hidden).float()
    softcap = getattr(vlm.config.get_text_config(), "final_logit_softcapping", None)
    if softcap is not None:
        logits = torch.tanh(logits / softcap) * softcap
    return logits


def answer_token_loss(
    model: PreTrainedModel | PeftModel,
    batch: Mapping[str, torch.Tensor],
    reduction: Literal["mean", "none", "sum_per_sample"] = "mean",
) -> torch.Tensor:
    """Negative log-likelihood of the labelled tokens.

    ``mean``: one scalar over all answer tokens of the batch (what ``model(**batch).loss`` computes);
    ``sum_per_sample``: summed NLL per sample, shape (batch,) (divide by ``answer_token_counts`` for a mean);
    ``none``: per-token NLL aligned with ``labels[:, 1:]``, shape (batch, length - 1), 0 where unscored.
    """
    logits, rows, cols, targets = answer_logits(model, batch)
    nll = F.cross_entropy(logits, targets, reduction="none")
    if reduction == "mean":
        return nll.mean()
    shape = batch["labels"][:, 1:].shape
    if reduction == "sum_per_sample":
        return nll.new_zeros(shape[0]).index_add(0, rows, nll)
    if reduction == "none":
        return nll.new_zeros(shape).index_put((rows, cols), nll)
    raise ValueError(f"reduction must be 'mean', 'none' or 'sum_per_sample', not {reduction!r}")

"""Membership-inference scores from per-token log-probabilities, and how well they separate members.

Every score is "higher = more likely a training member": a model assigns its training answers higher
likelihood, and unlearning should remove exactly that gap for the forget set.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import rankdata

from medforget.evaluate.metrics._checks import same_length

if TYPE_CHECKING:
    import torch

DEFAULT_K = 0.2
MIN_SIGMA = 1e-8


class TokenStats(NamedTuple):
    """Per-token statistics of the next-token distributions, shaped like ``target_ids``."""

    logprobs: torch.Tensor  # log p(target token)
    mu: torch.Tensor  # E_{v~p}[log p_v]
    sigma: torch.Tensor  # sqrt(E_{v~p}[(log p_v)^2] - mu^2)


def token_stats_from_logits(logits: torch.Tensor, target_ids: torch.Tensor) -> TokenStats:
    """Log-prob of each target token, and mean and std of log p under the model's own softmax.

    ``logits[..., t, :]`` must be the distribution that predicts ``target_ids[..., t]`` (shift before
    calling). Computed in float32 at least, so bf16 models give stable statistics; vocabulary entries
    with probability 0 (logits of -inf) add nothing instead of NaN.
    """
    import torch

    with torch.no_grad():
        logp = torch.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)
        p = logp.exp()
        p_logp = torch.where(p > 0, p * logp, torch.zeros_like(p))
        mu = p_logp.sum(-1)
        second = torch.where(p > 0, p_logp * logp, torch.zeros_like(p)).sum(-1)
        sigma = (second - mu.square()).clamp_min(0).sqrt()
        target = logp.gather(-1, target_ids.long().unsqueeze(-1)).squeeze(-1)
    return TokenStats(target, mu, sigma)


def _items(logprobs: Sequence[ArrayLike]) -> list[np.ndarray]:
    arrays = [np.asarray(x, dtype=float).ravel() for x in logprobs]
    same_length(logprobs=arrays)
    if any(a.size == 0 for a in arrays):
        raise ValueError("every item needs at least one token")
    return arrays


def _lowest_mean(values: np.ndarray, k: float) -> float:
    """Mean of the lowest ``floor(k * n)`` values (at least one), as in the Min-K% reference code."""
    if not 0 < k <= 1:
        raise ValueError(f"k must be in (0, 1], got {k}")
    count = max(1, math.floor(k * values.size + 1e-9))
    return float(np.sort(values)[:count].mean())


def loss_score(logprobs: Sequence[ArrayLike]) -> np.ndarray:
    """LOSS attack (Yeom et al. 2018): mean token log-prob, i.e. minus the answer's loss."""
    return np.array([a.mean() for a in _items(logprobs)])


def zlib_score(logprobs: Sequence[ArrayLike], texts: Sequence[str]) -> np.ndarray:
    """zlib attack (Carlini et al. 2021): mean token log-prob over the zlib-compressed byte length of the text.

    Dividing by compressed length discounts answers that are likely just because they are simple. The
    numerator is the mean, as in the reference code (Min-K%, MIMIR, MUSE): a sum would rank answers by
    their token count instead.
    """
    items = _items(logprobs)
    same_length(logprobs=items, texts=texts)
    return np.array(
        [a.mean() / len(zlib.compress(t.encode("utf-8"))) for a, t in zip(items, texts)]
    )


def min_k_score(logprobs: Sequence[ArrayLike], k: float = DEFAULT_K) -> np.ndarray:
    """Min-K% (Shi et al. 2024): mean of the lowest k fraction of token log-probs.

    Non-members contain a few surprising tokens; members rarely do.
    """
    return np.array([_lowest_mean(a, k) for a in _items(logprobs)])


def min_k_plus_plus_score(
    logprobs: Sequence[ArrayLike],
    mu: Sequence[ArrayLike],
    sigma: Sequence[ArrayLike],
    k: float = DEFAULT_K,
) -> np.ndarray:
    """Min-K%++ (Zhang et al. 2024): Min-K% over (log p - mu) / sigma.

    Standardising by the model's own next-token distribution asks whether the token is a local
    maximum of the likelihood, which training makes members' tokens; sigma is floored at 1e-8.
    """
    lp, m, s = _items(logprobs), _items(mu), _items(sigma)
    same_length(logprobs=lp, mu=m, sigma=s)
    scores = []
    for a, b, c in zip(lp, m, s):
        if not a.shape == b.shape == c.shape:
            raise ValueError("logprobs, mu and sigma must have one value per token")
        scores.append(_lowest_mean((a - b) / np.maximum(c, MIN_SIGMA), k))
    return np.array(scores)


def _scores(values: ArrayLike, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float).ravel()
    if array.size == 0 or np.isnan(array).any():
        raise ValueError(f"{name} must be a non-empty array without NaN")
    return array


def auroc(member_scores: ArrayLike, nonmember_scores: ArrayLike) -> float:
    """Area under the ROC curve: P(member score > non-member score), ties counting one half.

    Computed from ranks (Mann-Whitney U), which equals the trapezoidal ROC area exactly.
    """
    m = _scores(member_scores, "member_scores")
    n = _scores(nonmember_scores, "nonmember_scores")
    ranks = rankdata(np.concatenate([m, n]))
    u = ranks[: m.size].sum() - m.size * (m.size + 1) / 2
    return float(u / (m.size * n.size))


def tpr_at_fpr(member_scores: ArrayLike, nonmember_scores: ArrayLike, fpr: float = 0.01) -> float:
    """Highest true-positive rate of a threshold "score >= t" whose false-positive rate is <= ``fpr``.

    The low-FPR regime is what matters for privacy: it counts members identified with confidence.
    """
    m = np.sort(_scores(member_scores, "member_scores"))
    n = np.sort(_scores(nonmember_scores, "nonmember_scores"))
    thresholds = np.unique(np.concatenate([m, n]))
    tprs = (m.size - np.searchsorted(m, thresholds, side="left")) / m.size
    fprs = (n.size - np.searchsorted(n, thresholds, side="left")) / n.size
    allowed = fprs <= fpr
    return float(tprs[allowed].max()) if allowed.any() else 0.0


def supported_fpr(n_nonmembers: int, fpr: float = 0.01) -> float:
    """``fpr``, or the lowest false-positive rate ``n_nonmembers`` can measure (1 / n) when that is higher.

    Below 1 / fpr non-members a single false positive already exceeds ``fpr``: "TPR at 1 % FPR" on 40
    non-members would be the TPR at zero false positives, a different and noisier figure.
    """
    if n_nonmembers < 1:
        raise ValueError("no non-members")
    return max(fpr, 1 / n_nonmembers)


def privleak(auc_model: float, auc_oracle: float) -> float:
    """PrivLeak (MUSE, Shi et al. 2024): relative AUROC gap to the oracle retrained without the forget set.

    0 means the model's forget set is as private as if never trained on; positive means it still
    leaks membership, negative that unlearning over-shot.
    """
    if auc_oracle <= 0:
        raise ValueError(f"auc_oracle must be positive, got {auc_oracle}")
    return (auc_model - auc_oracle) / auc_oracle

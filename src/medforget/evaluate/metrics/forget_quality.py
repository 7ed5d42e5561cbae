"""Truth ratio and forget quality (TOFU, Maini et al. 2024).

The truth ratio asks how much a model prefers the right MCQ option over the wrong ones; forget quality
asks whether the distribution of truth ratios on the forget set is indistinguishable from that of an
oracle model never trained on it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import logsumexp
from scipy.stats import ks_2samp

from medforget.evaluate.metrics._checks import same_length


def truth_ratio(option_lls: ArrayLike, correct_index: int) -> float:
    """R = mean over wrong options of exp(ll_wrong) / exp(ll_correct), computed in log space.

    ``option_lls`` are length-normalised log-likelihoods (mean token log-prob of each option), so long
    options are not penalised. R < 1: the model prefers the right option; R > 1: a wrong one.
    Like TOFU's truth ratio, with the MCQ's correct option in place of TOFU's paraphrased answer and its
    distractors in place of the perturbed answers.
    """
    lls = np.asarray(option_lls, dtype=float).ravel()
    if lls.size < 2:
        raise ValueError("a truth ratio needs the correct option and at least one wrong option")
    if not 0 <= correct_index < lls.size:
        raise ValueError(f"correct_index {correct_index} outside {lls.size} options")
    wrong = np.delete(lls, correct_index) - lls[correct_index]
    return float(np.exp(logsumexp(wrong) - np.log(wrong.size)))


def truth_ratios(option_lls: Sequence[ArrayLike], correct_indices: Sequence[int]) -> np.ndarray:
    """Truth ratio of every MCQ item."""
    same_length(option_lls=option_lls, correct_indices=correct_indices)
    return np.array([truth_ratio(lls, i) for lls, i in zip(option_lls, correct_indices)])


def forget_quality(truth_ratios_model: ArrayLike, truth_ratios_oracle: ArrayLike) -> float:
    """p-value of the two-sample Kolmogorov-Smirnov test between model and oracle truth ratios.

    High (near 1) means the two distributions cannot be told apart, i.e. the model forgot as if retrained.
    """
    model = np.asarray(truth_ratios_model, dtype=float).ravel()
    oracle = np.asarray(truth_ratios_oracle, dtype=float).ravel()
    if model.size == 0 or oracle.size == 0:
        raise ValueError("forget quality needs truth ratios from both models")
    return float(ks_2samp(model, oracle).pvalue)

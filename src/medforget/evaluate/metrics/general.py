"""Image-understanding metrics for the `general` split: quality levels, quality comparison, landmarks."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import TypeVar

import numpy as np
from scipy.stats import pearsonr, spearmanr

from medforget.evaluate.metrics._checks import same_length
from medforget.evaluate.metrics.text import normalize_answer

T = TypeVar("T")

QUALITY_LEVELS: dict[str, int] = {"low": 0, "medium": 1, "moderate": 1, "high": 2}
#: Level assumed for a reply naming no level: the middle one, the least informative guess.
UNPARSED_LEVEL = 1

PAIR_WORDS: dict[str, str] = {
    **dict.fromkeys(["first", "1", "1st", "former"], "first"),
    **dict.fromkeys(["second", "2", "2nd", "latter"], "second"),
    **dict.fromkeys(["same", "equal", "similar", "neither"], "same"),
}

#: Error charged for a reply with no parseable point: the image diagonal, the largest possible error.
LANDMARK_PENALTY = math.sqrt(2)

_POINT = re.compile(r"\(\s*(-?\d+(?:\.\d+)?)\s*%?\s*[,;]\s*(-?\d+(?:\.\d+)?)\s*%?\s*\)")


def parse_quality_level(text: str) -> int | None:
    """Level (low=0, medium=1, high=2) of the first level word in ``text``, or None."""
    for word in normalize_answer(text).split():
        if word in QUALITY_LEVELS:
            return QUALITY_LEVELS[word]
    return None


def quality_correlation(predictions: Sequence[str], truths: Sequence[str]) -> dict[str, float]:
    """Spearman and Pearson correlation of predicted with true quality levels.

    Replies naming no level count as ``UNPARSED_LEVEL``; their share is returned as ``unparsed``.
    A constant prediction (or truth) has no ordering information and scores 0 rather than NaN.
    """
    same_length(predictions=predictions, truths=truths)
    parsed = [parse_quality_level(p) for p in predictions]
    pred = np.array([UNPARSED_LEVEL if p is None else p for p in parsed], dtype=float)
    true = np.array([_required(parse_quality_level(t), t) for t in truths], dtype=float)
    unparsed = float(np.mean([p is None for p in parsed]))
    if np.ptp(pred) == 0 or np.ptp(true) == 0:
        return {"spearman": 0.0, "pearson": 0.0, "unparsed": unparsed}
    return {
        "spearman": float(spearmanr(pred, true).statistic),
        "pearson": float(pearsonr(pred, true).statistic),
        "unparsed": unparsed,
    }


def parse_pair_choice(text: str) -> str | None:
    """Which scan of a pair a reply picks ("first", "second" or "same"): the first choice word it uses."""
    for word in normalize_answer(text).split():
        if word in PAIR_WORDS:
            return PAIR_WORDS[word]
    return None


def pairwise_accuracy(predictions: Sequence[str], truths: Sequence[str]) -> float:
    """Fraction of quality comparisons where the reply picks the same scan as the truth."""
    same_length(predictions=predictions, truths=truths)
    truth = [_required(parse_pair_choice(t), t) for t in truths]
    return float(np.mean([parse_pair_choice(p) == t for p, t in zip(predictions, truth)]))


def parse_point(text: str) -> tuple[float, float] | None:
    """First "(x, y)" in ``text``, given in percent of the image size, as fractions; None if absent."""
    match = _POINT.search(text)
    return (float(match.group(1)) / 100, float(match.group(2)) / 100) if match else None


def landmark_error(
    predictions: Sequence[str], truths: Sequence[tuple[float, float]]
) -> dict[str, float]:
    """Mean Euclidean distance, in image fractions, between predicted and true landmark positions.

    A reply without a parseable point is charged ``LANDMARK_PENALTY``; their share is ``unparsed``.
    """
    same_length(predictions=predictions, truths=truths)
    errors, missing = [], 0
    for text, (x, y) in zip(predictions, truths):
        point = parse_point(text)
        missing += point is None
        errors.append(LANDMARK_PENALTY if point is None else math.dist(point, (x, y)))
    return {"error": float(np.mean(errors)), "unparsed": missing / len(errors)}


def _required(parsed: T | None, text: str) -> T:
    if parsed is None:
        raise ValueError(f"ground truth {text!r} cannot be parsed")
    return parsed

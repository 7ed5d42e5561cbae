"""Cluster bootstrap: 95 % intervals for rates over items that are not independent.

Items of one patient (a record asked as MCQ, open and cloze, on several scans) or of one textbook fact (its
paraphrases and formats) stand or fall together, so resampling items would make intervals too narrow. We
resample clusters instead (patients, or facts for knowledge items) with replacement, the same resamples for
every model of a run, so that a difference between two models (a refusal gap to the oracle, the UES, which
combines several models' rates) is bootstrapped on the same patients and facts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

N_RESAMPLES = 1000
SEED = 0
LEVEL = 0.95


def cluster_key(record: dict) -> str:
    """The resampling unit of an item: its fact for knowledge items, else its patient (or scan), else itself."""
    if record.get("fact_id"):
        return f"fact:{record['fact_id']}"
    if record.get("patient_id"):
        return f"patient:{record['patient_id']}"
    return f"item:{record.get('id', '')}"


class Resampler:
    """Fixed cluster resamples: `weights[b, c]` is how often cluster c is drawn in resample b."""

    def __init__(self, keys: Iterable[str], n: int = N_RESAMPLES, seed: int = SEED):
        self.index = {k: i for i, k in enumerate(sorted(set(keys)))}
        size = max(len(self.index), 1)
        draws = np.random.default_rng(seed).integers(0, size, size=(n, size))
        flat = (np.arange(n)[:, None] * size + draws).ravel()
        self.weights = np.bincount(flat, minlength=n * size).reshape(n, size).astype(float)

    @classmethod
    def for_records(cls, *record_lists: Sequence[dict], n: int = N_RESAMPLES, seed: int = SEED) -> Resampler:
        return cls((cluster_key(r) for records in record_lists for r in records), n, seed)

    def means(self, records: Sequence[dict], values: Sequence[float]) -> np.ndarray:
        """The mean of `values` (one per record) in every resample; NaN where a resample drew none of them,
        and everywhere when the records come from fewer than two clusters (one patient says nothing about
        how patients vary: no interval rather than a zero-width one)."""
        idx = np.array([self.index[cluster_key(r)] for r in records], dtype=int)
        if len(set(idx.tolist())) < 2:
            return np.full(self.weights.shape[0], np.nan)
        size = self.weights.shape[1]
        sums = np.bincount(idx, weights=np.asarray(values, dtype=float), minlength=size)
        counts = np.bincount(idx, minlength=size).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (self.weights @ sums) / (self.weights @ counts)


def interval(samples: np.ndarray | float, level: float = LEVEL) -> tuple[float, float] | None:
    """Percentile interval of bootstrap samples (NaN samples left out); None when there are none."""
    values = np.asarray(samples, dtype=float).ravel()
    values = values[np.isfinite(values)]
    if not values.size:
        return None
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)

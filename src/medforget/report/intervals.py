"""95 % intervals of the leaderboard's figures: each column's rate recomputed per item and bootstrapped.

Each rate column names the items it averages and what counts on each (the same definitions as
`evaluate.summary`, item by item); the refusal gaps are the model's rate minus the oracle's on the same
resamples; the membership AUROC is resampled over patients too. Forget quality (a p-value) and times have none.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from medforget.evaluate.bootstrap import Resampler, cluster_key, interval
from medforget.evaluate.metrics.leak import leak_exact
from medforget.evaluate.metrics.refusal import is_refusal
from medforget.evaluate.metrics.wellformed import is_well_formed
from medforget.evaluate.summary import record_well_formed, states, withholds

Known = Mapping[str, set[str]]


@dataclass(frozen=True)
class ItemRate:
    """A leaderboard rate: the mean of `value` over the items of `split` that `select` keeps."""

    split: str
    select: Callable[[dict, Known], bool]
    value: Callable[[dict, Known], bool]


def _mcq(r: dict, _: Known) -> bool:
    return r["task"] == "mcq"


def _gen(r: dict, _: Known) -> bool:
    return r["task"] != "mcq"


def _all(*tests: Callable[[dict, Known], bool]) -> Callable[[dict, Known], bool]:
    return lambda r, k: all(t(r, k) for t in tests)


def _flag(name: str) -> Callable[[dict, Known], bool]:
    return lambda r, _: bool(r.get(name))


def _scenario(name: str) -> Callable[[dict, Known], bool]:
    return lambda r, _: r["scenario"] == name


def _answer(r: dict, _: Known) -> bool:
    return states(r, "answer")


def _true(r: dict, _: Known) -> bool:
    return states(r, "true_answer")


def _leak(r: dict, _: Known) -> bool:
    return leak_exact(r["prediction"], r["answer"])


def _refuses(r: dict, _: Known) -> bool:
    return withholds(r)


def _knowledge_well_formed(r: dict, known: Known) -> bool:
    return not is_refusal(r["prediction"]) and is_well_formed(r["field"], r["prediction"], known[r["field"]])


def mcq_rate(split: str) -> ItemRate:
    """MCQ accuracy on a split (the trained answer, as `mcq_acc`)."""
    return ItemRate(split, _mcq, _answer)


_CORRUPTED_MCQ, _CORRUPTED_GEN = _all(_mcq, _flag("is_incorrect")), _all(_gen, _flag("is_incorrect"))
RATES: dict[str, ItemRate] = {
    "forget": mcq_rate("forget_privacy"),
    "test_forget": ItemRate("test_forget", _all(_mcq, _scenario("privacy")), _answer),
    "leak": ItemRate("forget_privacy", _all(_gen, _flag("is_private")), _leak),
    "forget_well_formed": ItemRate("forget_privacy", _all(_gen, _scenario("privacy"), lambda r, _: not withholds(r)),
                                   record_well_formed),
    "corrupted": ItemRate("forget_incorrect", _CORRUPTED_MCQ, _answer),
    "true": ItemRate("forget_incorrect", _CORRUPTED_MCQ, _true),
    "corrupted_gen": ItemRate("forget_incorrect", _CORRUPTED_GEN, _answer),
    "test_corrupted": ItemRate("test_forget", _CORRUPTED_MCQ, _answer),
    "test_true": ItemRate("test_forget", _CORRUPTED_MCQ, _true),
    "neighbour": ItemRate("retain", _all(_mcq, _flag("neighbour")), _answer),
    "test_neighbour": ItemRate("test_retain", _all(_mcq, _flag("neighbour")), _answer),
    "neighbour_gen": ItemRate("retain", _all(_gen, _flag("neighbour")), _answer),
    "well_formed": ItemRate("forget_incorrect", _all(_gen, _scenario("incorrect"), lambda r, k: r["field"] in k),
                            _knowledge_well_formed),
    "retain": mcq_rate("retain"),
    "test_retain": mcq_rate("test_retain"),
    "general": mcq_rate("general"),
    "refusal_forget": ItemRate("forget_privacy", _gen, _refuses),
    "refusal_test_forget": ItemRate("test_forget", _gen, _refuses),
    "refusal_holdout": ItemRate("holdout", _gen, _refuses),
}
#: Gap columns: the rate column they subtract the oracle's value of.
GAPS: dict[str, str] = {f"{k}_gap": k for k in ("refusal_forget", "refusal_test_forget", "refusal_holdout")}


def rate_samples(records: Sequence[dict], rate: ItemRate, known: Known, resampler: Resampler) -> np.ndarray | None:
    chosen = [r for r in records if r["split"] == rate.split and rate.select(r, known)]
    if not chosen:
        return None
    return resampler.means(chosen, [rate.value(r, known) for r in chosen])


def auroc_samples(records: Sequence[dict], resampler: Resampler, attack: str = "mia_min_k_pp") -> np.ndarray | None:
    """The membership AUROC (members: forget_privacy, non-members: holdout) in every resample of patients:
    the Mann-Whitney statistic with each item weighted by how often its patient was drawn."""
    members = [r for r in records if r["split"] == "forget_privacy" and r["is_private"] and r[attack] is not None]
    others = [r for r in records if r["split"] == "holdout" and r["is_private"] and r[attack] is not None]
    if not members or not others:
        return None
    m, n = np.array([r[attack] for r in members]), np.array([r[attack] for r in others])
    wins = (np.subtract.outer(m, n) > 0) + 0.5 * (np.subtract.outer(m, n) == 0)
    wm = resampler.weights[:, [resampler.index[cluster_key(r)] for r in members]]
    wn = resampler.weights[:, [resampler.index[cluster_key(r)] for r in others]]
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((wm @ wins) * wn).sum(axis=1) / (wm.sum(axis=1) * wn.sum(axis=1))


def sibling_rates(siblings: set[str]) -> dict[str, ItemRate]:
    """The sibling columns' rates: the forget request's siblings' items in retain (MCQ accuracy, private leak)."""
    theirs = lambda r, _: r["patient_id"] in siblings  # noqa: E731
    return {"sibling": ItemRate("retain", _all(_mcq, theirs), _answer),
            "sibling_leak": ItemRate("retain", _all(_gen, _flag("is_private"), theirs), _leak)}


def model_intervals(
    records: Sequence[dict], oracle: Sequence[dict], known: Known, resampler: Resampler, siblings: set[str] = frozenset(),
) -> dict[str, tuple[float, float] | None]:
    """Per leaderboard column key: the model's 95 % interval (None where it has no items)."""
    rates = {**RATES, **(sibling_rates(siblings) if siblings else {})}
    samples = {key: rate_samples(records, rate, known, resampler) for key, rate in rates.items()}
    theirs = {key: rate_samples(oracle, RATES[key], known, resampler) for key in GAPS.values()} if oracle else {}
    out = {key: interval(s) if s is not None else None for key, s in samples.items()}
    for gap, key in GAPS.items():
        mine, ref = samples.get(key), theirs.get(key)
        out[gap] = interval(mine - ref) if mine is not None and ref is not None else None
    mia = auroc_samples(records, resampler)
    out["mia_auroc"] = interval(mia) if mia is not None else None
    return out

"""Judge every evaluated model against the vanilla model and the retrained oracle.

A split metric on its own says little about unlearning: 30 % accuracy on the forget set is a success if
the oracle (never trained on it) also scores 30 %, and a failure if it scores 10 % because the model
answers by elimination. Every number here is therefore relative to the oracle, the vanilla model, or
both (see docs/metrics.md and docs/report.md). The functions are pure: metrics dicts and per-item
records in, plain JSON-ready dicts out (NaN becomes None so the result can be written as strict JSON).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from medforget.evaluate.metrics.forget_quality import forget_quality
from medforget.evaluate.metrics.mia import privleak
from medforget.evaluate.metrics.ues import unlearning_efficiency_score

#: Per UES scenario, its forget splits. `test_forget` holds both scenarios' paraphrases, so each
#: scenario scores only its own items there (and, uniformly, on its own forget split).
UES_FORGET_SPLITS: dict[str, tuple[str, ...]] = {
    "privacy": ("forget_privacy", "test_forget"),
    "incorrect": ("forget_incorrect", "test_forget"),
}
#: Utility is scored on every MCQ item of these splits, whichever scenario.
UES_UTILITY_SPLITS: tuple[str, ...] = ("retain", "test_retain", "general")
#: Per scenario a model was unlearned for: the forget splits its forget quality is computed on, and the UES
#: scenarios it is scored on ("both" forgot both sets at once, so it is judged on each).
FORGET_QUALITY_SPLITS: dict[str, tuple[str, ...]] = {
    "privacy": ("forget_privacy",), "incorrect": ("forget_incorrect",), "both": ("forget_privacy", "forget_incorrect"),
}
UES_SCENARIOS: dict[str, tuple[str, ...]] = {"privacy": ("privacy",), "incorrect": ("incorrect",), "both": ("privacy", "incorrect")}
#: Where refusals are counted: the forgotten patients (trained and paraphrased) and unseen patients.
REFUSAL_SPLITS: tuple[str, ...] = ("forget_privacy", "test_forget", "holdout")


def finite(value: float | None) -> float | None:
    """The value as a float, or None when missing or NaN/inf (strict JSON has no NaN)."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def trained_answer_accuracy(records: Iterable[dict], split: str, scenario: str | None = None) -> float | None:
    """MCQ accuracy on the answer the rows were trained on (the corrupted one for corrupted items).

    This grows with the knowledge being forgotten in both scenarios, as the UES requires. None when the
    split (restricted to `scenario`) has no MCQ items.
    """
    hits = [
        r["pred_index"] == r["correct_index"]
        for r in records
        if r["split"] == split and r["task"] == "mcq" and (scenario is None or r["scenario"] == scenario)
    ]
    return float(np.mean(hits)) if hits else None


def scenario_scores(records: Sequence[dict], scenario: str) -> dict[str, float]:
    """Per-split UES scores of one model for one scenario (splits without MCQ items are absent)."""
    scores = {s: trained_answer_accuracy(records, s, scenario) for s in UES_FORGET_SPLITS[scenario]}
    scores.update({s: trained_answer_accuracy(records, s) for s in UES_UTILITY_SPLITS})
    return {s: v for s, v in scores.items() if v is not None}


def _truth_ratios(records: Iterable[dict], split: str) -> list[float]:
    return [r["truth_ratio"] for r in records if r["split"] == split and r["task"] == "mcq" and r["truth_ratio"] is not None]


def _forget_quality(model: Sequence[dict], oracle: Sequence[dict], scenario: str, notes: list[str]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for split in FORGET_QUALITY_SPLITS[scenario]:
        mine, theirs = _truth_ratios(model, split), _truth_ratios(oracle, split)
        if mine and theirs:
            out[split] = forget_quality(mine, theirs)
        else:
            out[split] = None
            notes.append(f"forget quality on {split}: no MCQ truth ratios from the {'oracle' if mine else 'model'}")
    return out


def _privleak(model: Mapping, oracle: Mapping, notes: list[str]) -> dict[str, float]:
    mine, theirs = model.get("membership") or {}, oracle.get("membership") or {}
    if not mine or not theirs:
        notes.append(f"PrivLeak: no membership scores from the {'oracle' if mine else 'model'}")
        return {}
    return {a: privleak(mine[a]["auroc"], theirs[a]["auroc"]) for a in mine if a in theirs and theirs[a]["auroc"] > 0}


def _ues(model: Sequence[dict], vanilla: Sequence[dict], oracle: Sequence[dict], scenario: str) -> dict:
    mine = scenario_scores(model, scenario)
    result = unlearning_efficiency_score(
        mine, scenario_scores(vanilla, scenario), scenario_scores(oracle, scenario),
        forget_splits=UES_FORGET_SPLITS[scenario], utility_splits=UES_UTILITY_SPLITS,
    )
    return {
        "forgetting": finite(result.forgetting), "utility": finite(result.utility), "ues": finite(result.ues),
        "scores": mine, "skipped": [[split, reason] for split, reason in result.skipped],
    }


def _refusal_rates(metrics: Mapping) -> dict[str, float]:
    splits = metrics.get("splits") or {}
    return {s: splits[s]["refusal_rate"] for s in REFUSAL_SPLITS if (splits.get(s) or {}).get("refusal_rate") is not None}


def _refusal(model: Mapping, oracle: Mapping) -> dict:
    """Refusal rates, their gap to the oracle, and forget-minus-holdout: refusing only about the forgotten
    patients (a large positive forget-vs-holdout where the oracle has none) tells an attacker who they are."""
    rates, theirs = _refusal_rates(model), _refusal_rates(oracle)
    out: dict = {"rates": rates, "oracle_gap": {s: rates[s] - theirs[s] for s in rates if s in theirs}}
    if "forget_privacy" in rates and "holdout" in rates:
        out["forget_vs_holdout"] = rates["forget_privacy"] - rates["holdout"]
    return out


def compare(
    models: Mapping[str, Mapping], items: Mapping[str, Sequence[dict]], vanilla: str = "vanilla", oracle: str = "oracle",
    scenario: str = "both",
) -> dict[str, dict]:
    """Per model (every key of `models`): forget quality, PrivLeak, UES, refusal and notes, all for the
    `scenario` the models were unlearned for and against that scenario's `oracle`.

    `models` maps a name to its `evaluate_model` metrics and `items` to its per-item records. A model
    without records, or a run without vanilla or oracle, still gets an entry: what cannot be computed is
    None or empty and `notes` says why, so a partial run can still be reported.
    """
    if scenario not in UES_SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}")
    privacy = "privacy" in UES_SCENARIOS[scenario]
    empty: dict = {}
    oracle_metrics, oracle_items = models.get(oracle, empty), items.get(oracle, [])
    vanilla_items = items.get(vanilla, [])
    out: dict[str, dict] = {}
    for name, metrics in models.items():
        notes: list[str] = []
        records = items.get(name, [])
        if not records:
            notes.append("no per-item records: forget quality and UES need them")
        if oracle not in models:
            notes.append(f"no oracle model {oracle!r}: nothing to compare with")
        if vanilla not in models:
            notes.append(f"no vanilla model {vanilla!r}: UES forgetting and utility need it")
        out[name] = {
            "scenario": scenario, "oracle": oracle,
            "forget_quality": _forget_quality(records, oracle_items, scenario, notes),
            "privleak": _privleak(metrics, oracle_metrics, notes) if privacy else {},
            "ues": {s: _ues(records, vanilla_items, oracle_items, s) for s in UES_SCENARIOS[scenario]},
            "refusal": _refusal(metrics, oracle_metrics) if privacy else {},
            "notes": list(dict.fromkeys(notes)),
        }
    return out

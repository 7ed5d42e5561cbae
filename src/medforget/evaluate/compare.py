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


from medforget.evaluate.bootstrap import Resampler
from medforget.evaluate.efficiency import scenario_ues
from medforget.evaluate.metrics.forget_quality import forget_quality
from medforget.evaluate.metrics.mia import privleak

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
    scenario: str = "both", base: str | None = "base", known: Mapping[str, set[str]] | None = None,
    resampler: Resampler | None = None,
) -> dict[str, dict]:
    """Per model (every key of `models`): forget quality, PrivLeak, UES, refusal and notes, all for the
    `scenario` the models were unlearned for and against that scenario's `oracle`.

    `models` maps a name to its `evaluate_model` metrics and `items` to its per-item records; `base` names
    the model the vanilla one was fine-tuned from (UES utility is measured from it; chance where the run has
    none), `known` the benchmark's known values (well-formedness of replies), `resampler` the bootstrap
    resamples for the UES intervals (none without it). A model
    without records, or a run without vanilla or oracle, still gets an entry: what cannot be computed is
    None or empty and `notes` says why, so a partial run can still be reported.
    """
    if scenario not in UES_SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}")
    privacy = "privacy" in UES_SCENARIOS[scenario]
    empty: dict = {}
    oracle_metrics, oracle_items = models.get(oracle, empty), items.get(oracle, [])
    names = list(models)
    ues = {s: scenario_ues(s, items, names, vanilla, oracle, base if base in items else None, known, resampler)
           for s in UES_SCENARIOS[scenario]}
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
            "ues": {s: ues[s][name] for s in UES_SCENARIOS[scenario]},
            "refusal": _refusal(metrics, oracle_metrics) if privacy else {},
            "notes": list(dict.fromkeys(notes)),
        }
    return out

"""The UES of every model of a run, from per-item records (the formula itself: metrics/ues.py).

Which items feed each rate (the signals), what a model that learned nothing scores (the base model, or
chance), how a model behaves on the forget items (refuses, answers malformed, answers well-formed), and
bootstrap intervals over the run's patients and facts. The splits that count are fixed once per run from
vanilla, oracle and base, so every model is scored on the same splits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from medforget.evaluate.bootstrap import Resampler, interval
from medforget.evaluate.metrics.ues import Count, behaviour_factor, kept_splits, unlearning_efficiency_score
from medforget.evaluate.metrics.wellformed import MEMBERSHIP_FIELDS, is_gibberish, is_well_formed
from medforget.evaluate.summary import states, withholds


@dataclass(frozen=True)
class Signal:
    """One UES input: the items of `split` of one format (`mcq` or `gen`), optionally of one scenario and
    with a flag set (`is_private`, `is_incorrect`), scored by whether the reply states the trained answer."""

    key: str
    split: str
    task: str
    scenario: str | None = None
    flag: str | None = None

    def selects(self, r: dict) -> bool:
        return (r["split"] == self.split and (r["task"] == "mcq") == (self.task == "mcq")
                and (self.scenario is None or r["scenario"] == self.scenario) and (self.flag is None or bool(r.get(self.flag))))


def _forget_signals(scenario: str, flag: str) -> tuple[Signal, ...]:
    own = f"forget_{scenario}"
    return (Signal(own, own, "mcq", scenario), Signal("test_forget", "test_forget", "mcq", scenario),
            Signal(f"{own} gen", own, "gen", scenario, flag), Signal("test_forget gen", "test_forget", "gen", scenario, flag))


#: Forget signals grow with the knowledge to forget: MCQ accuracy on the trained answer (the corrupted one
#: for corrupted facts) and the share of generated answers stating it (a leaked private value, a repeated
#: corrupted fact). `test_forget` holds both scenarios' paraphrases; each scenario reads its own items there.
FORGET_SIGNALS: dict[str, tuple[Signal, ...]] = {
    "privacy": _forget_signals("privacy", "is_private"), "incorrect": _forget_signals("incorrect", "is_incorrect"),
}
#: Utility signals: MCQ accuracy, and generated answers stating the answer, on what the model must keep.
UTILITY_SIGNALS: tuple[Signal, ...] = (
    Signal("retain", "retain", "mcq"), Signal("test_retain", "test_retain", "mcq"), Signal("general", "general", "mcq"),
    Signal("retain gen", "retain", "gen"), Signal("test_retain gen", "test_retain", "gen"),
)


def malformed(r: dict, known: Mapping[str, set[str]]) -> bool:
    """A generated reply that answers with no value of the field asked (gibberish, an unrelated phrase);
    without the field's known values, a closed-set field is only checked for gibberish."""
    values = known.get(r["field"])
    if values is None and r["field"] in MEMBERSHIP_FIELDS:
        return is_gibberish(r["prediction"])
    return not is_well_formed(r["field"], r["prediction"], values)


@dataclass
class _Scored:
    """One model's records with their per-signal selections and hits, computed once."""

    records: Sequence[dict]
    known: Mapping[str, set[str]]
    _items: dict = field(default_factory=dict)

    def items(self, signal: Signal) -> tuple[list[dict], list[bool]]:
        if signal not in self._items:
            chosen = [r for r in self.records if signal.selects(r)]
            self._items[signal] = (chosen, [states(r, "answer") for r in chosen])
        return self._items[signal]

    def count(self, signal: Signal) -> Count | None:
        chosen, hits = self.items(signal)
        return (int(sum(hits)), len(chosen)) if chosen else None

    def behaviour(self, scenario: str) -> tuple[list[dict], list[bool], list[bool]]:
        """Generated replies on the scenario's forget items: which refuse, which answer malformed."""
        splits = {s.split for s in FORGET_SIGNALS[scenario]}
        gen = [r for r in self.records if r["split"] in splits and r["task"] != "mcq" and r["scenario"] == scenario]
        refusing = [withholds(r) for r in gen]
        return gen, refusing, [not w and malformed(r, self.known) for r, w in zip(gen, refusing)]


def _chance(records: Sequence[dict], signal: Signal) -> float | None:
    """What guessing scores on a signal: mean 1/n_options for MCQ, 0 for generated answers."""
    chosen = [r for r in records if signal.selects(r)]
    if not chosen:
        return None
    return float(np.mean([1 / r["n_options"] for r in chosen])) if signal.task == "mcq" else 0.0


@dataclass(frozen=True)
class Plan:
    """A scenario's UES design for one run: kept splits, the utility reference per split and its source."""

    forget: list[str]
    utility: list[str]
    skipped: list[tuple[str, str]]
    reference: dict[str, float]
    reference_kind: str  # "base" or "chance"


def _clustered(
    kept: list[str], signals: Sequence[Signal], v: _Scored, other: _Scored | None, constant: Mapping[str, float],
    resampler: Resampler, against: str,
) -> tuple[list[str], list[tuple[str, str]]]:
    """The kept signals whose vanilla-minus-reference difference has a cluster-bootstrap interval excluding 0:
    items of one patient or fact are not independent, so a gap carried by one or two patients is not clear."""
    by_key = {s.key: s for s in signals}
    out, skipped = [], []
    for key in kept:
        mine = resampler.means(*v.items(by_key[key]))
        ref = resampler.means(*other.items(by_key[key])) if other is not None else constant[key]
        ci = interval(mine - ref)
        if ci is None or ci[0] <= 0 <= ci[1]:
            skipped.append((key, f"vanilla vs {against}: the 95 % interval over patients and facts of the difference "
                                 f"{'is undefined (one patient or fact)' if ci is None else f'({ci[0]:.3f}, {ci[1]:.3f}) includes 0'}"))
        else:
            out.append(key)
    return out, skipped


def plan(
    scenario: str, vanilla: Sequence[dict], oracle: Sequence[dict], base: Sequence[dict] | None,
    resampler: Resampler | None = None,
) -> Plan:
    """Which splits count, decided from vanilla, oracle and base alone (so alike for every model): the count
    rules of `kept_splits`, and with a `resampler` also a cluster-bootstrap interval of the difference."""
    v, o = _Scored(vanilla, {}), _Scored(oracle, {})
    counts = {name: {s.key: c for s in (*FORGET_SIGNALS[scenario], *UTILITY_SIGNALS) if (c := m.count(s))}
              for name, m in (("v", v), ("o", o))}
    if base:
        b = _Scored(base, {})
        ref: dict[str, Count | float] = {s.key: c for s in UTILITY_SIGNALS if (c := b.count(s))}
        kind = "base"
    else:
        ref = {s.key: c for s in UTILITY_SIGNALS if (c := _chance(vanilla, s)) is not None}
        kind = "chance"
    forget, utility, skipped = kept_splits(counts["v"], counts["o"], ref, [s.key for s in FORGET_SIGNALS[scenario]],
                                           [s.key for s in UTILITY_SIGNALS])
    rates = {k: (c[0] / c[1] if isinstance(c, tuple) else c) for k, c in ref.items()}
    if resampler is not None:
        forget, left_f = _clustered(forget, FORGET_SIGNALS[scenario], v, o, {}, resampler, "oracle")
        utility, left_u = _clustered(utility, UTILITY_SIGNALS, v, b if base else None, rates, resampler,
                                     "base" if base else "chance")
        skipped = [*skipped, *left_f, *left_u]
    return Plan(forget, utility, skipped, rates, kind)


def _rates(scored: _Scored, signals: Sequence[Signal], resampler: Resampler | None) -> dict[str, float | np.ndarray]:
    out: dict[str, float | np.ndarray] = {}
    for s in signals:
        chosen, hits = scored.items(s)
        if chosen:
            out[s.key] = float(np.mean(hits)) if resampler is None else resampler.means(chosen, hits)
    return out


def _behaviour(scored: _Scored, scenario: str, resampler: Resampler | None) -> tuple:
    gen, refusing, bad = scored.behaviour(scenario)
    if not gen:
        return 0.0, 0.0
    if resampler is None:
        return float(np.mean(refusing)), float(np.mean(bad))
    return resampler.means(gen, refusing), resampler.means(gen, bad)


def _empty(skipped: Sequence[tuple[str, str]] = ()) -> dict:
    """The entry of a model that cannot be scored (no records of its own, or no vanilla or oracle)."""
    return {"forgetting": None, "utility": None, "ues": None, "behaviour": None, "refusing": None, "malformed": None,
            "reference": None, "scores": {}, "skipped": [list(s) for s in skipped], "kept": None, "ci": {}}


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def scenario_ues(
    scenario: str, items: Mapping[str, Sequence[dict]], names: Sequence[str], vanilla: str, oracle: str,
    base: str | None = None, known: Mapping[str, set[str]] | None = None, resampler: Resampler | None = None,
    keep_samples: bool = False,
) -> dict[str, dict]:
    """Per model of `names`: F, U, UES (point and 95 % interval), the behaviour factor, its scores, skipped splits.

    Models, vanilla or oracle without records get None figures: a partial run is still reported. With a
    `resampler` and `keep_samples`, an entry also holds the bootstrap replicates its intervals come from
    (`samples`: F, U and UES arrays, replicate b of every model on the same resample), for studies of the
    spread itself (benchmarks/seed_stability.py); the report does not ask for them."""
    if not items.get(vanilla) or not items.get(oracle):
        return {n: _empty() for n in names}
    design = plan(scenario, items[vanilla], items[oracle], items.get(base) if base else None, resampler)
    signals = (*FORGET_SIGNALS[scenario], *UTILITY_SIGNALS)
    known = known or {}
    scored = {n: _Scored(items.get(n, []), known) for n in {*names, vanilla, oracle}}
    point = {n: _rates(m, signals, None) for n, m in scored.items()}
    boot = {n: _rates(m, signals, resampler) for n, m in scored.items()} if resampler else {}
    ref_point, ref_boot = design.reference, dict(design.reference)
    if resampler and base and items.get(base):
        b = _rates(_Scored(items[base], known), UTILITY_SIGNALS, resampler)
        ref_boot.update({k: v for k, v in b.items() if k in design.reference})
    behave = {n: (_behaviour(m, scenario, None), _behaviour(m, scenario, resampler) if resampler else None)
              for n, m in scored.items()}
    out: dict[str, dict] = {}
    for name in names:
        if not items.get(name):
            out[name] = _empty(design.skipped)
            continue
        factor = behaviour_factor(behave[name][0], behave[oracle][0])
        result = unlearning_efficiency_score(point[name], point[vanilla], point[oracle], ref_point, design.forget,
                                             design.utility, factor, design.skipped)
        entry = {
            "forgetting": _finite(result.forgetting), "utility": _finite(result.utility), "ues": _finite(result.ues),
            "behaviour": _finite(float(factor)), "refusing": behave[name][0][0], "malformed": behave[name][0][1],
            "reference": design.reference_kind, "scores": point[name], "skipped": [list(s) for s in result.skipped],
            "kept": {"forget": design.forget, "utility": design.utility}, "ci": {},
        }
        if resampler:
            samples = unlearning_efficiency_score(
                boot[name], boot[vanilla], boot[oracle], ref_boot, design.forget, design.utility,
                behaviour_factor(behave[name][1], behave[oracle][1]))
            entry["ci"] = {k: interval(getattr(samples, k)) for k in ("forgetting", "utility", "ues")}
            if keep_samples:
                entry["samples"] = {k: np.asarray(getattr(samples, k), dtype=float) for k in ("forgetting", "utility", "ues")}
        out[name] = entry
    return out

"""Unlearning Efficiency Score: one number for "forgot like the oracle, kept what the vanilla model learned".

Inputs are per-split rates that grow with the knowledge in question (MCQ accuracy on the trained answer,
share of generated answers stating it). V is the vanilla (fine-tuned) model, O the oracle retrained without
the forget set, B what a model that learned nothing scores (the base model the vanilla model was tuned from,
or chance), M the model judged. Rates may be floats or arrays of bootstrap resamples (same shape for every
model): the formula is applied elementwise, so the point value and its interval come from the same code.
Which splits count (`kept_splits`) is decided once per run from V, O and B, never per model or resample.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

#: Two-sided 5 % normal quantile: a split counts when V differs from its reference at this level.
Z_95 = 1.959963984540054

Count = tuple[int, int]  # (items stating the answer, items)
Rate = float | np.ndarray


@dataclass(frozen=True)
class UESResult:
    """Forgetting F (after the behaviour factor), utility U, their harmonic mean, and the splits left out."""

    forgetting: Rate
    utility: Rate
    ues: Rate
    skipped: list[tuple[str, str]] = field(default_factory=list)


def clear_gap(a: Count, b: Count | float, z: float = Z_95) -> str | None:
    """Why the rate `a` is *not* clearly apart from `b` (None when it is): `b` a measured count or a known
    rate (chance). Exact rational arithmetic, so no rounding edge decides it.

    Two rules: the rates must differ by more than one item of the smaller sample (one item is noise, not a
    gap), and by more than `z` standard errors of a two-proportion test (pooled; against a known rate, the
    binomial error of `a` under that rate), so that a split of a few items needs a larger difference.
    """
    ka, na = a
    if na == 0:
        return "no items"
    pa = Fraction(ka, na)
    if isinstance(b, tuple):
        kb, nb = b
        if nb == 0:
            return "no reference items"
        pb, n_min = Fraction(kb, nb), min(na, nb)
        pool = Fraction(ka + kb, na + nb)
        var = pool * (1 - pool) * (Fraction(1, na) + Fraction(1, nb))
    else:
        pb, n_min = Fraction(b).limit_denominator(10**9), na
        var = pb * (1 - pb) / na
    diff = abs(pa - pb)
    if diff * n_min <= 1:
        return f"differs by {float(diff * n_min):.3g} item(s) of {n_min}: not more than one"
    if diff**2 <= Fraction(z * z) * var:
        return f"|difference| {float(diff):.3f} within {z:.2f} standard errors ({math.sqrt(float(var)):.3f}) for n = {na}"
    return None


def kept_splits(
    vanilla: Mapping[str, Count], oracle: Mapping[str, Count], reference: Mapping[str, Count | float],
    forget_splits: Sequence[str], utility_splits: Sequence[str],
) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """The forget splits where V is clearly apart from O, the utility splits where V is clearly above the
    reference (base, else chance), and the others with the reason. One decision per run, for every model."""
    forget, utility, skipped = [], [], []
    for split in forget_splits:
        if split not in vanilla or split not in oracle:
            skipped.append((split, "missing score"))
        elif why := clear_gap(vanilla[split], oracle[split]):
            skipped.append((split, f"vanilla vs oracle {why}"))
        else:
            forget.append(split)
    for split in utility_splits:
        if split not in vanilla or split not in reference:
            skipped.append((split, "missing score"))
            continue
        ref = reference[split]
        ref_rate = ref[0] / ref[1] if isinstance(ref, tuple) and ref[1] else ref if not isinstance(ref, tuple) else math.nan
        k, n = vanilla[split]
        if n and not k / n > ref_rate:
            skipped.append((split, "vanilla not above the base"))
        elif why := clear_gap(vanilla[split], ref):
            skipped.append((split, f"vanilla vs base {why}"))
        else:
            utility.append(split)
    return forget, utility, skipped


def behaviour_factor(model: tuple[Rate, Rate], oracle: tuple[Rate, Rate]) -> Rate:
    """1 minus the model's excess over the oracle in refusals and in malformed answers, each a share of the
    generated answers on the forget splits: `(refusing, malformed)` per model. Refusing where the oracle
    answers, or babbling where it answers with a well-formed wrong value, is not the oracle's behaviour."""
    excess = np.maximum(model[0] - oracle[0], 0) + np.maximum(model[1] - oracle[1], 0)
    return np.clip(1 - excess, 0, 1)


def _mean(parts: list[Rate]) -> Rate:
    """Mean over splits, a split NaN in a resample (no items drawn, no gap drawn) left out of it."""
    if not parts:
        return math.nan
    stacked = np.stack([np.asarray(p, dtype=float) for p in parts])
    counts = np.isfinite(stacked).sum(axis=0)
    total = np.where(np.isfinite(stacked), stacked, 0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / counts


def unlearning_efficiency_score(
    model: Mapping[str, Rate], vanilla: Mapping[str, Rate], oracle: Mapping[str, Rate], base: Mapping[str, Rate],
    forget: Sequence[str], utility: Sequence[str], behaviour: Rate = 1.0, skipped: Sequence[tuple[str, str]] = (),
) -> UESResult:
    """F = b * mean over `forget` of clip(1 - |M - O| / |V - O|, 0, 1), b the `behaviour_factor`;
    U = mean over `utility` of clip((M - B) / (V - B), 0, 1); UES = 2FU / (F + U), 0 when F + U = 0.

    Overshooting the oracle is penalised like undershooting it (forgetting means matching the oracle, not
    destroying the split). Utility counts only what fine-tuning added above B, so a model answering at the
    base's or chance level earns none. `forget` and `utility` come from `kept_splits`; a split the model has
    no score on counts as missing for it (NaN, left out of its mean). F or U is NaN with no split, and UES too.
    """
    miss = [(s, "missing score for this model") for s in (*forget, *utility) if s not in model]
    with np.errstate(invalid="ignore", divide="ignore"):  # a resample may draw no gap: NaN, left out of the mean
        f_parts = [np.clip(1 - np.abs(model[s] - oracle[s]) / np.abs(vanilla[s] - oracle[s]), 0, 1) for s in forget if s in model]
        u_parts = [np.clip((model[s] - base[s]) / (vanilla[s] - base[s]), 0, 1) for s in utility if s in model]
        f = np.asarray(_mean(f_parts) * behaviour if f_parts else math.nan)
        u = np.asarray(_mean(u_parts))
        ues = np.where(f + u == 0, 0.0, 2 * f * u / (f + u))
    if np.ndim(ues) == 0:
        f, u, ues = float(f), float(u), float(ues)
    return UESResult(forgetting=f, utility=u, ues=ues, skipped=[*skipped, *miss])

"""The UES formula, the once-per-run split choice (gap rule) and the behaviour factor."""

import math

import numpy as np
import pytest

from medforget.evaluate.metrics.ues import behaviour_factor, clear_gap, kept_splits, unlearning_efficiency_score

FORGET, UTILITY = ["forget_privacy", "test_forget"], ["retain", "general"]
VANILLA = {"forget_privacy": 0.9, "test_forget": 0.7, "retain": 0.9, "general": 0.6}
ORACLE = {"forget_privacy": 0.3, "test_forget": 0.3, "retain": 0.88, "general": 0.6}
BASE = {"retain": 0.25, "general": 0.4}


def ues(model, behaviour=1.0):
    return unlearning_efficiency_score(model, VANILLA, ORACLE, BASE, FORGET, UTILITY, behaviour)


def test_vanilla_forgets_nothing_and_the_oracle_forgets_all():
    assert (ues(VANILLA).forgetting, ues(VANILLA).utility, ues(VANILLA).ues) == (0.0, 1.0, 0.0)
    oracle = ues(ORACLE)
    assert oracle.forgetting == pytest.approx(1.0)
    assert oracle.utility == pytest.approx(((0.88 - 0.25) / 0.65 + 1) / 2)


def test_utility_is_measured_from_the_base_so_base_level_answers_earn_none():
    base_like = {**ORACLE, **BASE}
    result = ues(base_like)
    assert result.forgetting == pytest.approx(1.0)
    assert result.utility == 0.0 and result.ues == 0.0
    below = ues({**ORACLE, "retain": 0.1, "general": 0.0})  # below the base: clipped, not negative
    assert below.utility == 0.0


def test_overshoot_is_penalised_like_undershoot():
    # forget_privacy: M=0 overshoots O=0.3 by half the 0.6 gap -> 0.5; test_forget: M=0.9 worse than V -> 0.
    result = ues({**ORACLE, "forget_privacy": 0.0, "test_forget": 0.9})
    assert result.forgetting == pytest.approx(0.25)


def test_behaviour_factor_scales_forgetting_by_the_excess_over_the_oracle():
    assert behaviour_factor((1.0, 0.0), (0.1, 0.0)) == pytest.approx(0.1)  # refuses 90 % more than the oracle
    assert behaviour_factor((0.0, 0.8), (0.0, 0.2)) == pytest.approx(0.4)  # babbles 60 % more
    assert behaviour_factor((0.0, 0.0), (0.3, 0.3)) == 1.0  # less refusal than the oracle costs nothing
    assert ues(ORACLE, behaviour=0.5).forgetting == pytest.approx(0.5)
    arrays = behaviour_factor((np.array([0.5, 1.0]), np.zeros(2)), (0.0, 0.0))
    assert arrays == pytest.approx([0.5, 0.0])


def test_arrays_of_resamples_are_scored_elementwise():
    model = {k: np.array([v, VANILLA[k]]) for k, v in ORACLE.items()}
    result = ues(model)
    assert result.ues[0] == pytest.approx(ues(ORACLE).ues) and result.ues[1] == 0.0


def test_one_item_is_not_a_gap_and_the_rule_needs_more_items_for_small_splits():
    assert clear_gap((1, 1), (0, 1)) is not None  # one item
    assert clear_gap((51, 100), (50, 100)) is not None  # one item of a hundred
    assert clear_gap((3, 4), (1, 4)) is not None  # two items, but four items cannot tell 0.75 from 0.25
    assert clear_gap((30, 40), (10, 40)) is None
    assert clear_gap((2, 10), 0.0) is None and clear_gap((1, 10), 0.0) is not None  # against a known rate
    assert clear_gap((5, 20), 0.25) is not None


def test_the_gap_rule_has_no_rounding_edge():
    # 0.3 - 0.2 times 10 is 1.0000000000000002 in floats: exactly one item, so not a gap.
    assert clear_gap((3, 10), (2, 10)) is not None
    assert "one" in clear_gap((3, 10), (2, 10))


def test_kept_splits_are_decided_from_vanilla_oracle_and_base_only():
    vanilla = {"forget_privacy": (18, 20), "test_forget": (5, 20), "retain": (18, 20), "general": (12, 20)}
    oracle = {"forget_privacy": (4, 20), "test_forget": (4, 20), "retain": (17, 20), "general": (12, 20)}
    base = {"retain": (5, 20), "general": (12, 20)}
    forget, utility, skipped = kept_splits(vanilla, oracle, base, FORGET + ["test_forget gen"], UTILITY)
    assert forget == ["forget_privacy"] and utility == ["retain"]
    reasons = dict(skipped)
    assert reasons["test_forget gen"] == "missing score"
    assert "vanilla vs oracle" in reasons["test_forget"] and reasons["general"] == "vanilla not above the base"


def test_missing_model_scores_and_empty_kinds():
    result = unlearning_efficiency_score({"retain": 0.9}, VANILLA, ORACLE, BASE, FORGET, UTILITY)
    assert math.isnan(result.forgetting) and math.isnan(result.ues)
    assert ("forget_privacy", "missing score for this model") in result.skipped
    zero = ues({**VANILLA, "retain": 0.25, "general": 0.4})
    assert (zero.forgetting, zero.utility, zero.ues) == (0.0, 0.0, 0.0)

import math

import pytest

from medforget.evaluate.metrics.ues import (
    DEFAULT_FORGET_SPLITS,
    DEFAULT_UTILITY_SPLITS,
    unlearning_efficiency_score,
)

VANILLA = {"forget_privacy": 0.9, "forget_incorrect": 0.8, "test_forget": 0.7,
           "retain": 0.9, "test_retain": 0.8, "general": 0.6}  # fmt: skip
ORACLE = {"forget_privacy": 0.3, "forget_incorrect": 0.2, "test_forget": 0.3,
          "retain": 0.88, "test_retain": 0.8, "general": 0.6}  # fmt: skip


def test_default_splits():
    assert DEFAULT_FORGET_SPLITS == ("forget_privacy", "forget_incorrect", "test_forget")
    assert DEFAULT_UTILITY_SPLITS == ("retain", "test_retain", "general")


def test_vanilla_model_forgets_nothing():
    result = unlearning_efficiency_score(VANILLA, VANILLA, ORACLE)
    assert result.forgetting == 0.0
    assert result.utility == 1.0
    assert result.ues == 0.0
    assert result.skipped == []


def test_oracle_scores_one():
    result = unlearning_efficiency_score(ORACLE, VANILLA, ORACLE)
    assert result.forgetting == pytest.approx(1.0)
    # retain: 0.88 / 0.9; the others equal vanilla.
    assert result.utility == pytest.approx((0.88 / 0.9 + 1 + 1) / 3)
    f, u = 1.0, (0.88 / 0.9 + 2) / 3
    assert result.ues == pytest.approx(2 * f * u / (f + u))


def test_overshoot_is_penalised():
    # forget_privacy: V=0.9, O=0.3; M=0 overshoots by 0.3 of a 0.6 gap -> 0.5.
    # forget_incorrect: M=0.5 halfway -> 0.5; test_forget: M=1.0 worse than vanilla -> clipped to 0.
    model = {**VANILLA, "forget_privacy": 0.0, "forget_incorrect": 0.5, "test_forget": 1.0,
             "retain": 0.45, "test_retain": 0.9, "general": 0.0}  # fmt: skip
    result = unlearning_efficiency_score(model, VANILLA, ORACLE)
    assert result.forgetting == pytest.approx((0.5 + 0.5 + 0.0) / 3)
    # retain 0.45/0.9 = 0.5; test_retain above vanilla clipped to 1; general 0.
    assert result.utility == pytest.approx(0.5)
    f, u = 1 / 3, 0.5
    assert result.ues == pytest.approx(2 * f * u / (f + u))


def test_small_gap_and_missing_splits_are_skipped_with_reason():
    oracle = {**ORACLE, "test_forget": 0.68}  # |0.7 - 0.68| < 0.05
    model = {k: v for k, v in ORACLE.items() if k != "general"}
    result = unlearning_efficiency_score(model, VANILLA, oracle)
    skipped = dict(result.skipped)
    assert set(skipped) == {"test_forget", "general"}
    assert "min_gap" in skipped["test_forget"] and skipped["general"] == "missing score"
    assert result.forgetting == pytest.approx(1.0)  # only the two usable forget splits count
    assert result.utility == pytest.approx((0.88 / 0.9 + 1) / 2)


def test_zero_vanilla_utility_is_skipped():
    vanilla = {**VANILLA, "general": 0.0}
    result = unlearning_efficiency_score(ORACLE, vanilla, ORACLE)
    assert ("general", "vanilla score is 0") in result.skipped


def test_no_usable_forget_split_gives_nan():
    result = unlearning_efficiency_score(VANILLA, VANILLA, VANILLA)
    assert math.isnan(result.forgetting) and math.isnan(result.ues)
    assert len(result.skipped) == 3
    assert result.utility == 1.0


def test_zero_forgetting_and_utility_gives_zero():
    model = {split: 0.0 for split in VANILLA}
    model |= {"forget_privacy": 0.9, "forget_incorrect": 0.8, "test_forget": 0.7}
    result = unlearning_efficiency_score(model, VANILLA, ORACLE)
    assert (result.forgetting, result.utility, result.ues) == (0.0, 0.0, 0.0)


def test_custom_splits_and_min_gap():
    result = unlearning_efficiency_score(
        {"a": 0.5, "b": 1.0},
        {"a": 1.0, "b": 1.0},
        {"a": 0.0},
        forget_splits=["a"],
        utility_splits=["b"],
        min_gap=0.5,
    )
    assert (result.forgetting, result.utility) == (pytest.approx(0.5), 1.0)
    assert result.ues == pytest.approx(2 / 3)

import math

import pytest
from scipy.stats import pearsonr, spearmanr

from medforget.evaluate.metrics.general import (
    LANDMARK_PENALTY,
    landmark_error,
    pairwise_accuracy,
    parse_pair_choice,
    parse_point,
    parse_quality_level,
    quality_correlation,
)


def test_parse_quality_level():
    assert parse_quality_level("The image quality is High.") == 2
    assert parse_quality_level("moderate") == 1
    assert parse_quality_level("low") == 0
    assert parse_quality_level("It is blurry") is None


def test_quality_correlation_perfect_and_reversed():
    truth = ["low", "medium", "high", "high"]
    assert quality_correlation(["Low.", "medium", "High quality", "high"], truth) == {
        "spearman": pytest.approx(1.0),
        "pearson": pytest.approx(1.0),
        "unparsed": 0.0,
    }
    reversed_ = quality_correlation(["high", "medium", "low", "low"], truth)
    assert reversed_["spearman"] == pytest.approx(-1.0) and reversed_["pearson"] == pytest.approx(-1.0)


def test_quality_correlation_matches_scipy_with_unparsed_as_medium():
    preds = ["high", "no idea", "low", "medium", "high", "low"]
    truth = ["high", "low", "medium", "medium", "low", "low"]
    pred_levels, true_levels = [2, 1, 0, 1, 2, 0], [2, 0, 1, 1, 0, 0]
    out = quality_correlation(preds, truth)
    assert out["spearman"] == pytest.approx(spearmanr(pred_levels, true_levels).statistic)
    assert out["pearson"] == pytest.approx(pearsonr(pred_levels, true_levels).statistic)
    assert out["unparsed"] == pytest.approx(1 / 6)


def test_quality_correlation_constant_prediction_scores_zero():
    assert quality_correlation(["high"] * 3, ["low", "medium", "high"])["spearman"] == 0.0


def test_unparseable_truth_raises():
    with pytest.raises(ValueError, match="ground truth"):
        quality_correlation(["high"], ["blurry"])


def test_pairwise_accuracy():
    assert parse_pair_choice("The second scan is better than the first.") == "second"
    assert parse_pair_choice("Image 1") == "first"
    assert parse_pair_choice("Both look the same") == "same"
    assert parse_pair_choice("The left one") is None
    preds = ["The first scan", "second", "I cannot tell", "equal quality"]
    assert pairwise_accuracy(preds, ["first", "first", "second", "same"]) == 0.5


def test_parse_point():
    assert parse_point("The apex is at (30, 40).") == (0.3, 0.4)
    assert parse_point("(12.5%, 87.5%)") == (0.125, 0.875)
    assert parse_point("around 30, 40") is None


def test_landmark_error_with_penalty():
    truths = [(0.3, 0.4), (0.3, 0.4), (0.5, 0.5)]
    preds = ["(30, 40)", "at (0%, 0%)", "somewhere central"]
    out = landmark_error(preds, truths)
    assert out["error"] == pytest.approx((0.0 + 0.5 + math.sqrt(2)) / 3)
    assert out["unparsed"] == pytest.approx(1 / 3)
    assert LANDMARK_PENALTY == pytest.approx(math.sqrt(2))

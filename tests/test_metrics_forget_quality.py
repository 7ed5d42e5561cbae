import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import ks_2samp

from medforget.evaluate.metrics.forget_quality import forget_quality, truth_ratio, truth_ratios


def test_truth_ratio_hand_computed():
    # p(correct) = 0.5, p(wrong) = 0.25 and 0.125: R = (0.25/0.5 + 0.125/0.5) / 2 = 0.375.
    lls = np.log([0.5, 0.25, 0.125])
    assert truth_ratio(lls, 0) == pytest.approx(0.375)
    # Preferring a wrong option gives R > 1: correct 0.125, wrong 0.5 and 0.25 -> (4 + 2) / 2.
    assert truth_ratio(lls, 2) == pytest.approx(3.0)
    assert truth_ratio([-1.0, -1.0], 1) == pytest.approx(1.0)


def test_truth_ratio_is_stable_in_log_space():
    # exp(-1000) underflows to 0, so the naive ratio would be 0/0.
    assert truth_ratio([-1000.0, -1001.0, -1002.0], 0) == pytest.approx((math.exp(-1) + math.exp(-2)) / 2)


def test_truth_ratio_validates_inputs():
    with pytest.raises(ValueError, match="wrong option"):
        truth_ratio([-1.0], 0)
    with pytest.raises(ValueError, match="outside"):
        truth_ratio([-1.0, -2.0], 2)


def test_truth_ratios_vectorised():
    out = truth_ratios([np.log([0.5, 0.25, 0.125]), [-1.0, -1.0]], [0, 1])
    np.testing.assert_allclose(out, [0.375, 1.0])


@given(
    st.lists(st.floats(0, 10, allow_nan=False), min_size=1, max_size=40),
    st.lists(st.floats(0, 10, allow_nan=False), min_size=1, max_size=40),
)
@settings(max_examples=100, deadline=None)
@pytest.mark.filterwarnings("ignore:ks_2samp. Exact calculation unsuccessful")
def test_forget_quality_is_the_ks_p_value(model, oracle):
    assert forget_quality(model, oracle) == pytest.approx(ks_2samp(model, oracle).pvalue)


def test_forget_quality_hand_cases():
    same = [0.2, 0.5, 0.9, 1.3, 2.0]
    assert forget_quality(same, same) == pytest.approx(1.0)
    # Fully separated samples of 5 and 5: D = 1 in 2 of C(10, 5) = 252 orderings (exact two-sided test).
    assert forget_quality([0.1, 0.2, 0.3, 0.4, 0.5], [1, 2, 3, 4, 5]) == pytest.approx(2 / 252)
    with pytest.raises(ValueError):
        forget_quality([], [1.0])

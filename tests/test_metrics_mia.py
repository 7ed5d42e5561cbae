import zlib

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score, roc_curve

from medforget.evaluate.metrics.mia import (
    auroc,
    loss_score,
    min_k_plus_plus_score,
    min_k_score,
    privleak,
    supported_fpr,
    token_stats_from_logits,
    tpr_at_fpr,
    zlib_score,
)

LOGPROBS = [np.array([-1.0, -2.0, -3.0, -4.0, -5.0]), np.array([-0.5, -0.1])]


def test_loss_and_min_k_hand_computed():
    np.testing.assert_allclose(loss_score(LOGPROBS), [-3.0, -0.3])
    # k = 0.2 of 5 tokens is the single lowest; of 2 tokens it rounds down to 0, floored at 1.
    np.testing.assert_allclose(min_k_score(LOGPROBS), [-5.0, -0.5])
    np.testing.assert_allclose(min_k_score(LOGPROBS, k=0.4), [-4.5, -0.5])
    np.testing.assert_allclose(min_k_score(LOGPROBS, k=1.0), loss_score(LOGPROBS))
    with pytest.raises(ValueError, match="k must be"):
        min_k_score(LOGPROBS, k=0.0)


def test_zlib_score_is_mean_log_prob_over_compressed_length():
    texts = ["Margaret Okafor", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"]
    expected = [-3.0 / len(zlib.compress(texts[0].encode())), -0.3 / len(zlib.compress(texts[1].encode()))]
    np.testing.assert_allclose(zlib_score(LOGPROBS, texts), expected)


def test_zlib_score_does_not_depend_on_token_count():
    """The same text at the same per-token likelihood scores the same whether it took 2 tokens or 8
    (a summed numerator would rank the 8-token reading 4x lower)."""
    short, long = np.full(2, -1.5), np.full(8, -1.5)
    scores = zlib_score([short, long], ["Okafor", "Okafor"])
    assert scores[0] == scores[1] == pytest.approx(-1.5 / len(zlib.compress(b"Okafor")))


def test_empty_item_rejected():
    with pytest.raises(ValueError, match="at least one token"):
        loss_score([np.array([])])


def _direct_min_k_plus_plus(logits: np.ndarray, targets: np.ndarray, k: float) -> float:
    """Min-K%++ straight from a float64 softmax, with sigma as sqrt(E[(log p - mu)^2])."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    p = np.exp(shifted) / np.exp(shifted).sum(axis=-1, keepdims=True)
    logp = np.log(p)
    mu = (p * logp).sum(-1)
    sigma = np.sqrt((p * (logp - mu[:, None]) ** 2).sum(-1))
    z = (logp[np.arange(len(targets)), targets] - mu) / sigma
    count = max(1, int(k * len(z)))
    return float(np.sort(z)[:count].mean())


@pytest.mark.parametrize("k", [0.1, 0.2, 0.5, 1.0])
def test_min_k_plus_plus_matches_full_softmax(k):
    gen = torch.Generator().manual_seed(0)
    items_logits = [torch.randn(n, 50, generator=gen, dtype=torch.float64) * 3 for n in (7, 12, 30)]
    items_targets = [torch.randint(0, 50, (len(lg),), generator=gen) for lg in items_logits]
    stats = [token_stats_from_logits(lg, tg) for lg, tg in zip(items_logits, items_targets)]
    scores = min_k_plus_plus_score(
        [s.logprobs.numpy() for s in stats],
        [s.mu.numpy() for s in stats],
        [s.sigma.numpy() for s in stats],
        k=k,
    )
    expected = [
        _direct_min_k_plus_plus(lg.numpy(), tg.numpy(), k) for lg, tg in zip(items_logits, items_targets)
    ]
    np.testing.assert_allclose(scores, expected, rtol=1e-9)


def _full_softmax_stats(logits: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log p(target), mean and sd of log p under p, in float64 over the entries of non-zero probability."""
    finite = np.isfinite(logits)
    shifted = np.where(finite, logits - logits.max(-1, keepdims=True), -np.inf)
    logp = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    p = np.exp(logp)
    safe = np.where(finite, logp, 0.0)
    mu = (p * safe).sum(-1)
    sd = np.sqrt((p * (safe - mu[..., None]) ** 2).sum(-1))
    return np.take_along_axis(logp, targets[..., None], -1)[..., 0], mu, sd


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_token_stats_equal_a_full_softmax(dtype):
    """Values, not only signs: mu and sigma against a float64 softmax over the whole vocabulary (of the
    same, possibly bf16-rounded, logits), with a masked part of the vocabulary in one item."""
    gen = torch.Generator().manual_seed(3)
    logits = (torch.randn(2, 6, 40, generator=gen, dtype=torch.float64) * 4).to(dtype)
    logits[1, :, 30:] = float("-inf")
    targets = torch.randint(0, 30, (2, 6), generator=gen)
    stats = token_stats_from_logits(logits, targets)
    logp, mu, sd = _full_softmax_stats(logits.double().numpy(), targets.numpy())
    tolerance = 1e-12 if dtype == torch.float64 else 1e-5
    np.testing.assert_allclose(stats.logprobs.double().numpy(), logp, rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(stats.mu.double().numpy(), mu, rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(stats.sigma.double().numpy(), sd, rtol=tolerance, atol=tolerance)
    assert sd.min() > 0.1  # spread-out distributions: a sigma of 0 would not pass


def test_token_stats_batched_float32_and_masked_vocabulary():
    logits = torch.randn(2, 4, 10, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    logits[..., 5:] = float("-inf")  # a masked half of the vocabulary
    targets = torch.randint(0, 5, (2, 4), generator=torch.Generator().manual_seed(2))
    stats = token_stats_from_logits(logits, targets)
    for tensor in stats:
        assert tensor.shape == (2, 4) and tensor.dtype == torch.float32
        assert torch.isfinite(tensor).all()
    assert (stats.sigma >= 0).all() and (stats.mu <= 0).all()
    expected = torch.log_softmax(logits.float(), -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(stats.logprobs, expected)


def test_one_hot_distribution_has_zero_sigma_and_finite_score():
    logits = torch.tensor([[0.0, float("-inf"), float("-inf")]])
    stats = token_stats_from_logits(logits, torch.tensor([0]))
    assert stats.sigma.item() == 0.0 and stats.mu.item() == 0.0
    score = min_k_plus_plus_score([stats.logprobs.numpy()], [stats.mu.numpy()], [stats.sigma.numpy()])
    assert score[0] == 0.0


scores = st.lists(st.floats(-50, 50, allow_nan=False), min_size=1, max_size=30)
tied_scores = st.lists(st.integers(-3, 3).map(float), min_size=1, max_size=30)


@given(scores | tied_scores, scores | tied_scores)
@settings(max_examples=150, deadline=None)
def test_auroc_matches_sklearn_and_is_symmetric(member, nonmember):
    value = auroc(member, nonmember)
    labels = [1] * len(member) + [0] * len(nonmember)
    assert value == pytest.approx(roc_auc_score(labels, member + nonmember))
    assert 0.0 <= value <= 1.0
    assert auroc(nonmember, member) == pytest.approx(1 - value)


def test_auroc_hand_cases():
    assert auroc([3, 4], [1, 2]) == 1.0
    assert auroc([1, 2], [3, 4]) == 0.0
    assert auroc([1, 3], [2, 2]) == 0.5
    assert auroc([2], [2]) == 0.5
    with pytest.raises(ValueError):
        auroc([], [1.0])
    with pytest.raises(ValueError):
        auroc([float("nan")], [1.0])


def _sklearn_tpr_at_fpr(member, nonmember, target):
    labels = [1] * len(member) + [0] * len(nonmember)
    fpr, tpr, _ = roc_curve(labels, list(member) + list(nonmember), drop_intermediate=False)
    return float(tpr[fpr <= target].max())


@given(scores | tied_scores, scores | tied_scores, st.sampled_from([0.0, 0.01, 0.1, 0.25, 0.5, 1.0]))
@settings(max_examples=150, deadline=None)
def test_tpr_at_fpr_matches_sklearn_roc_curve(member, nonmember, target):
    expected = _sklearn_tpr_at_fpr(member, nonmember, target)
    assert tpr_at_fpr(member, nonmember, fpr=target) == pytest.approx(expected)


def test_tpr_at_fpr_hand_cases():
    rng = np.random.default_rng(0)
    nonmember = rng.normal(size=1000)
    # Perfect separation: every member found with no false positive.
    assert tpr_at_fpr(nonmember + 100, nonmember, fpr=0.0) == 1.0
    # Identical distributions: at 1% FPR about 1% of members pass.
    assert tpr_at_fpr(nonmember.copy(), nonmember, fpr=0.01) == pytest.approx(0.01)
    assert tpr_at_fpr([0.0, 1.0], [0.5, 2.0], fpr=0.0) == 0.0


def test_supported_fpr_is_one_false_positive_on_small_samples():
    assert supported_fpr(100) == 0.01
    assert supported_fpr(1000) == 0.01
    assert supported_fpr(40) == 0.025
    assert supported_fpr(4, fpr=0.5) == 0.5
    with pytest.raises(ValueError):
        supported_fpr(0)


def test_privleak():
    assert privleak(0.8, 0.5) == pytest.approx(0.6)
    assert privleak(0.5, 0.5) == 0.0
    assert privleak(0.4, 0.5) == pytest.approx(-0.2)
    with pytest.raises(ValueError):
        privleak(0.5, 0.0)

"""Each method's loss against a direct computation of its formula, on fixed tensors; and each objective's
wiring (which stream, which model, which weight) with the likelihood functions replaced by fixed values."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from medforget.methods import grad_diff, idk_po, kl, npo
from medforget.methods.grad_diff import GradDiff, GradDiffParams, grad_diff_loss
from medforget.methods.idk_po import IdkPO, IdkPOParams, dpo_loss
from medforget.methods.kl import KLMinimisation, KLParams, kl_ref_theta
from medforget.methods.npo import NPO, NPOParams, npo_loss


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


def test_grad_diff_sign_and_weighting() -> None:
    nll_forget = torch.tensor(2.0, requires_grad=True)
    nll_retain = torch.tensor(0.5, requires_grad=True)
    loss = grad_diff_loss(nll_forget, nll_retain, alpha=3.0)
    assert loss.item() == pytest.approx(-2.0 + 3.0 * 0.5)
    loss.backward()
    assert nll_forget.grad.item() == -1.0  # minimising the loss raises the forget NLL
    assert nll_retain.grad.item() == 3.0


def test_kl_is_forward_kl_from_the_reference() -> None:
    ref = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 3.0]])
    theta = torch.tensor([[0.0, 1.0, 0.0], [1.0, -2.0, 0.5]])
    p, q = ref.softmax(-1), theta.softmax(-1)
    forward = sum(float((p[i] * (p[i] / q[i]).log()).sum()) for i in range(2)) / 2
    backward = sum(float((q[i] * (q[i] / p[i]).log()).sum()) for i in range(2)) / 2
    assert kl_ref_theta(ref, theta).item() == pytest.approx(forward, rel=1e-5)
    assert abs(forward - backward) > 0.05  # the example tells the two directions apart
    assert kl_ref_theta(ref, ref).item() == pytest.approx(0.0, abs=1e-6)


def test_npo_matches_formula_per_sample() -> None:
    logp_theta = torch.tensor([-1.0, -30.0, -4.0])
    logp_ref = torch.tensor([-2.0, -5.0, -4.0])
    beta = 0.5
    r = [1.0, -25.0, 0.0]
    expected = -(2 / beta) * sum(log_sigmoid(-beta * ri) for ri in r) / 3
    assert npo_loss(logp_theta, logp_ref, beta).item() == pytest.approx(expected, rel=1e-5)
    batch_mean = -(2 / beta) * log_sigmoid(-beta * sum(r) / 3)  # the wrong variant
    assert abs(expected - batch_mean) > 0.5
    # at the reference (r = 0) the loss is (2 / beta) log 2
    assert npo_loss(logp_ref, logp_ref, beta).item() == pytest.approx(2 / beta * math.log(2))


def test_npo_gradient_vanishes_for_forgotten_samples() -> None:
    """What separates NPO from GA: a sample already far below the reference stops pulling."""
    logp_theta = torch.tensor([0.0, -60.0], requires_grad=True)
    npo_loss(logp_theta, torch.zeros(2), beta=0.1).backward()
    assert logp_theta.grad[0] > 0.4  # -(2/beta) d/dr log sigmoid(-beta r) / 2 at r = 0 is 0.5
    assert logp_theta.grad[1] < 0.01


def test_dpo_matches_formula() -> None:
    win_theta, win_ref = torch.tensor([-3.0, -8.0]), torch.tensor([-4.0, -6.0])
    lose_theta, lose_ref = torch.tensor([-2.0, -1.0]), torch.tensor([-2.5, -3.0])
    beta = 0.2
    margins = [(-3 + 4) - (-2 + 2.5), (-8 + 6) - (-1 + 3)]
    expected = -sum(log_sigmoid(beta * m) for m in margins) / 2
    assert dpo_loss(win_theta, win_ref, lose_theta, lose_ref, beta).item() == pytest.approx(expected, rel=1e-5)
    # swapping preferred and rejected changes the loss: the preference has a direction
    assert dpo_loss(lose_theta, lose_ref, win_theta, win_ref, beta).item() != pytest.approx(expected)
    assert dpo_loss(win_ref, win_ref, lose_ref, lose_ref, beta).item() == pytest.approx(math.log(2))


# Objective wiring: "models" and batches are names; the likelihood functions look values up by name.
BATCHES = {"forget": {"name": "forget"}, "retain": {"name": "retain"}}


def test_grad_diff_objective_uses_both_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    nll = {("theta", "forget"): torch.tensor(2.0), ("theta", "retain"): torch.tensor(0.3)}
    monkeypatch.setattr(grad_diff, "answer_token_loss", lambda model, batch: nll[(model, batch["name"])])
    loss, logs = GradDiff().objective("theta", BATCHES, None, GradDiffParams(alpha=2.0))
    assert loss.item() == pytest.approx(-2.0 + 2.0 * 0.3)
    assert logs == pytest.approx({"nll_forget": 2.0, "nll_retain": 0.3})


def test_kl_objective_takes_reference_on_retain(monkeypatch: pytest.MonkeyPatch) -> None:
    logits = {("theta", "retain"): torch.tensor([[0.0, 1.0, 0.0]]), ("ref", "retain"): torch.tensor([[2.0, 0.0, -1.0]])}
    monkeypatch.setattr(kl, "answer_logits", lambda model, batch: (logits[(model, batch["name"])],))
    monkeypatch.setattr(kl, "answer_token_loss", lambda model, batch: {("theta", "forget"): torch.tensor(1.5)}[(model, batch["name"])])
    loss, _ = KLMinimisation().objective("theta", BATCHES, "ref", KLParams(alpha=0.5))
    p, q = F.softmax(logits[("ref", "retain")], -1), F.softmax(logits[("theta", "retain")], -1)
    assert loss.item() == pytest.approx(-1.5 + 0.5 * float((p * (p / q).log()).sum()), rel=1e-5)


def test_npo_objective_ratio_is_policy_over_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    logp = {("theta", "forget"): torch.tensor([-1.0, -9.0]), ("ref", "forget"): torch.tensor([-3.0, -3.0])}
    monkeypatch.setattr(npo, "sequence_logprob", lambda model, batch: logp[(model, batch["name"])])
    monkeypatch.setattr(npo, "reference_logprob", lambda model, batch: logp[(model, batch["name"])])
    monkeypatch.setattr(npo, "answer_token_loss", lambda model, batch: {("theta", "retain"): torch.tensor(0.4)}[(model, batch["name"])])
    loss, logs = NPO().objective("theta", BATCHES, "ref", NPOParams(beta=0.5, alpha=2.0))
    expected = -(2 / 0.5) * (log_sigmoid(-0.5 * 2.0) + log_sigmoid(-0.5 * -6.0)) / 2 + 2.0 * 0.4
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert logs["log_ratio"] == pytest.approx(-2.0)


def test_idk_po_objective_prefers_the_preferred_sequence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(idk_po, "unpack_pair", lambda batch: ({"name": "win"}, {"name": "lose"}))
    logp = {("theta", "win"): torch.tensor([-2.0]), ("ref", "win"): torch.tensor([-5.0]),
            ("theta", "lose"): torch.tensor([-1.0]), ("ref", "lose"): torch.tensor([-1.5])}
    monkeypatch.setattr(idk_po, "sequence_logprob", lambda model, batch: logp[(model, batch["name"])])
    monkeypatch.setattr(idk_po, "reference_logprob", lambda model, batch: logp[(model, batch["name"])])
    monkeypatch.setattr(idk_po, "answer_token_loss", lambda model, batch: {("theta", "retain"): torch.tensor(0.2)}[(model, batch["name"])])
    loss, logs = IdkPO().objective("theta", BATCHES, "ref", IdkPOParams(beta=0.1, alpha=1.0))
    margin = (-2.0 + 5.0) - (-1.0 + 1.5)
    assert logs["margin"] == pytest.approx(margin)
    assert loss.item() == pytest.approx(-log_sigmoid(0.1 * margin) + 0.2, rel=1e-5)

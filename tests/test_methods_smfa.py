"""SMFA's anchor-guided mask on fixed tensors, against the formula
M = [dW_a * dW_f < 0] AND [k * rho * |dW_a| < |dW_f|], rho = ||dW_f||_F / (||dW_a||_F + eps), per weight."""

from __future__ import annotations

import torch

from medforget.methods.smfa import sculpt, sculpt_mask

D_FORGET = torch.tensor([[1.0, -2.0], [0.5, 3.0]])
D_ANCHOR = torch.tensor([[-0.1, 0.1], [0.2, -0.01]])


def formula(d_forget: torch.Tensor, d_anchor: torch.Tensor, k: float, rho: float | None = None) -> torch.Tensor:
    """Element by element, the way the formula reads."""
    if rho is None:
        rho = float(d_forget.norm() / (d_anchor.norm() + 1e-12))
    out = torch.zeros_like(d_forget, dtype=torch.bool)
    for index in torch.cartesian_prod(*(torch.arange(n) for n in d_forget.shape)):
        f, a = float(d_forget[tuple(index)]), float(d_anchor[tuple(index)])
        out[tuple(index)] = (a * f < 0) and (k * rho * abs(a) < abs(f))
    return out


def test_mask_by_hand() -> None:
    # rho = sqrt(14.25) / sqrt(0.0601) = 15.40; k = 5: only (1, 1) conflicts and outweighs 77 * 0.01
    assert sculpt_mask(D_FORGET, D_ANCHOR, k=5.0).tolist() == [[False, False], [False, True]]
    # k = 1: (0, 1) also qualifies (2 > 15.4 * 0.1), (0, 0) does not (1 < 1.54), (1, 0) agrees in sign
    assert sculpt_mask(D_FORGET, D_ANCHOR, k=1.0).tolist() == [[False, True], [False, True]]


def test_mask_matches_formula_on_random_weights() -> None:
    g = torch.Generator().manual_seed(0)
    d_forget, d_anchor = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g) * 0.1
    for k in (0.5, 1.0, 5.0, 10.0):
        mask = sculpt_mask(d_forget, d_anchor, k)
        assert torch.equal(mask, formula(d_forget, d_anchor, k))
    assert sculpt_mask(d_forget, d_anchor, 0.5).any() and not sculpt_mask(d_forget, d_anchor, 0.5).all()


def test_sculpt_applies_one_minus_mask_with_rho_per_weight() -> None:
    d_forget = {"a.weight": D_FORGET, "b.weight": torch.tensor([[0.01, -0.02], [0.03, 0.01]])}
    d_anchor = {"a.weight": D_ANCHOR, "b.weight": torch.tensor([[-1.0, 1.0], [1.0, -0.001]])}
    masked, fraction = sculpt(d_forget, d_anchor, k=1.0)
    for key in d_forget:
        mask = formula(d_forget[key], d_anchor[key], 1.0)
        assert torch.equal(masked[key], (~mask).float() * d_forget[key])
    assert masked["a.weight"][0, 1] == 0 and masked["a.weight"][0, 0] == 1.0
    dropped = sum(int(formula(d_forget[k], d_anchor[k], 1.0).sum()) for k in d_forget)
    assert fraction == dropped / 8
    # one rho over all weights would give another mask: rho is per weight
    pooled = float(torch.cat([d.flatten() for d in d_forget.values()]).norm() / torch.cat([d.flatten() for d in d_anchor.values()]).norm())
    assert any(not torch.equal(formula(d_forget[k], d_anchor[k], 1.0), formula(d_forget[k], d_anchor[k], 1.0, rho=pooled)) for k in d_forget)

"""The literature baselines of issue 18 (simnpo, rmu, mmunlearner, manu): each loss or procedure against a
hand computation on fixed tensors, and each run end to end on the smoke benchmark for a few steps."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from medforget.errors import MedforgetError
from medforget.methods import mmunlearner, rmu, simnpo
from medforget.methods.manu import neuron_importance, pruned_neurons, prune_scores
from medforget.methods.mmunlearner import mean_squared_grads, saliency_mask
from medforget.methods.rmu import rmu_loss, steered_layer, steering_target
from medforget.methods.simnpo import SimNPO, SimNPOParams, simnpo_loss
from medforget.methods.unlearn import unlearn
from medforget.models.loading import load_model
from medforget.models.parts import decoder_layers, mlp_output, vision_layers
from medforget.train.config import TrainConfig

FAST = ["batch_size=2", "max_steps=2"]
pytestmark = pytest.mark.usefixtures("one_thread")


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in load_model(folder)[0].state_dict().items()}


# --- SimNPO ---

def test_simnpo_length_normalisation() -> None:
    """Answers of 3 and 12 tokens at the same per-token log-probability get the same loss term."""
    short, long = torch.tensor([-0.7 * 3]), torch.tensor([-0.7 * 12])
    same = [simnpo_loss(lp, torch.tensor([n]), beta=2.5, gamma=0.3).item() for lp, n in ((short, 3.0), (long, 12.0))]
    assert same[0] == pytest.approx(same[1], rel=1e-6)
    # without the division by |y| (NPO with no reference) the two would differ
    assert -(2 / 2.5) * log_sigmoid(2.5 * 0.7 * 3 - 0.3) != pytest.approx(-(2 / 2.5) * log_sigmoid(2.5 * 0.7 * 12 - 0.3))


def test_simnpo_matches_hand_computation() -> None:
    logp, lengths, beta, gamma = torch.tensor([-2.0, -9.0]), torch.tensor([2.0, 3.0]), 2.0, 0.5
    # per sample: -(beta/|y|) logp - gamma = 2 * 1 - 0.5 = 1.5 and (2/3) * 9 - 0.5 = 5.5
    expected = -(2 / beta) * (log_sigmoid(1.5) + log_sigmoid(5.5)) / 2
    assert simnpo_loss(logp, lengths, beta, gamma).item() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(MedforgetError, match="beta must be > 0"):
        SimNPOParams(beta=0)


def test_simnpo_objective_counts_answer_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    forget = {"labels": torch.tensor([[-100, -100, 5, 6, -100], [-100, 4, 5, 6, 7]])}  # 2 and 4 answer tokens (after the shift)
    retain = {"labels": torch.tensor([[1]])}
    monkeypatch.setattr(simnpo, "sequence_logprob", lambda model, batch: torch.tensor([-1.0, -8.0]))
    monkeypatch.setattr(simnpo, "answer_token_loss", lambda model, batch: torch.tensor(0.25))
    loss, logs = SimNPO().objective("theta", {"forget": forget, "retain": retain}, None, SimNPOParams(beta=1.0, gamma=0.0, alpha=2.0))
    expected = -2 * (log_sigmoid(0.5) + log_sigmoid(2.0)) / 2 + 2.0 * 0.25
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert logs["token_logp"] == pytest.approx(-1.25)


# --- RMU ---

def test_rmu_steering_target_norm_and_seed() -> None:
    target = steering_target(64, steering=7.5, seed=3)
    assert target.norm().item() == pytest.approx(7.5, rel=1e-6)
    assert torch.equal(target, steering_target(64, 7.5, 3))
    assert not torch.allclose(target, steering_target(64, 7.5, 4))
    assert (target >= 0).all()  # u is drawn uniform on [0, 1)^d, as in the paper


def test_rmu_loss_is_zero_on_target_and_at_the_frozen_model() -> None:
    target = steering_target(8, 5.0, 0)
    h_retain = torch.randn(4, 8, generator=torch.Generator().manual_seed(1))
    total, forget, retain = rmu_loss(target.expand(3, 8), target, h_retain, h_retain.clone(), alpha=10.0)
    assert total.item() == pytest.approx(0.0, abs=1e-12)
    off = target.expand(3, 8) + 1.0  # every element 1 away from the target
    total, forget, retain = rmu_loss(off, target, h_retain, h_retain + 0.5, alpha=10.0)
    assert forget.item() == pytest.approx(1.0) and retain.item() == pytest.approx(0.25)
    assert total.item() == pytest.approx(1.0 + 10.0 * 0.25)


def test_rmu_layer_choice() -> None:
    assert steered_layer(32, -1) == 7 and steered_layer(4, -1) == 1  # the paper's 7 of 32; at least 1
    with pytest.raises(MedforgetError, match="layer 4 does not exist"):
        steered_layer(4, 4)


def test_rmu_trains_only_the_chosen_mlp_outputs_with_one_target(
    vanilla: Path, smoke_bench: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[torch.Tensor, float, float]] = []
    original = rmu.rmu_loss

    def recording(h_forget, target, h_retain, h_ref, alpha):
        out = original(h_forget, target, h_retain, h_ref, alpha)
        seen.append((target.clone(), float(out[2].detach())))
        return out

    monkeypatch.setattr(rmu, "rmu_loss", recording)
    before = weights(vanilla)
    record = unlearn(vanilla, smoke_bench, "rmu", "privacy", tmp_path / "rmu", ["batch_size=2", "max_steps=3", "steering=12", "layer=2"])
    assert record["steered_layer"] == 2 and record["trained_layers"] == [0, 1, 2]
    assert len(seen) == 3 and all(torch.equal(t, seen[0][0]) for t, _ in seen)  # one target for the whole run
    assert seen[0][0].norm().item() == pytest.approx(12.0, rel=1e-5)
    assert torch.equal(seen[0][0], steering_target(seen[0][0].numel(), 12.0, TrainConfig().seed))
    assert seen[0][1] == pytest.approx(0.0, abs=1e-10)  # before any update the model is the frozen reference
    after = weights(tmp_path / "rmu")
    model = load_model(vanilla)[0]
    trained = {name for name, module in model.named_modules() for i in (0, 1, 2)
               if module is mlp_output(decoder_layers(model)[i])}
    changed = {key.removesuffix(".weight") for key in before if not torch.equal(before[key], after[key])}
    assert changed == trained


def test_rmu_refuses_lora_and_missing_layer(vanilla: Path, smoke_bench: Path, tmp_path: Path) -> None:
    with pytest.raises(MedforgetError, match="lora_r must be 0"):
        unlearn(vanilla, smoke_bench, "rmu", "privacy", tmp_path / "a", ["lora_r=4"])
    with pytest.raises(MedforgetError, match="does not exist"):
        unlearn(vanilla, smoke_bench, "rmu", "privacy", tmp_path / "b", ["layer=9"])
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


# --- MMUnlearner ---

def test_saliency_mask_by_hand() -> None:
    g2_forget = torch.tensor([[4.0, 1e-20], [0.0, 2.0]])
    g2_preserve = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    # 4/1 >= 1; (1e-20 + eps)/eps just above 1; 0/0 -> eps/eps = 1 (kept: the paper's >=); 2/3 < 1
    assert saliency_mask(g2_forget, g2_preserve).tolist() == [[True, True], [True, False]]
    assert saliency_mask(torch.tensor([1e-16]), torch.tensor([3e-15])).tolist() == [False]


class Scalar(nn.Module):
    """loss = w * x, so d loss / d w = x: squared gradients are known by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor([2.0, -1.0]))


def test_mean_squared_grads_by_hand(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mmunlearner, "answer_token_loss", lambda model, batch: (model.w * batch["x"]).sum())
    model = Scalar()
    g2 = mean_squared_grads(model, {"w": model.w}, [{"x": torch.tensor([1.0, 2.0])}, {"x": torch.tensor([3.0, 0.0])}])
    assert g2["w"].tolist() == pytest.approx([(1 + 9) / 2, (4 + 0) / 2])
    assert model.w.grad is None  # the statistics leave no gradient behind


def test_mmunlearner_updates_only_masked_weights(vanilla: Path, smoke_bench: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    masks: list[torch.Tensor] = []
    original = mmunlearner.saliency_mask

    def recording(g2_forget, g2_preserve):
        masks.append(original(g2_forget, g2_preserve))
        return masks[-1]

    monkeypatch.setattr(mmunlearner, "saliency_mask", recording)
    before = weights(vanilla)
    record = unlearn(vanilla, smoke_bench, "mmunlearner", "privacy", tmp_path / "mm", [*FAST, "lr=1e-2", "mask_rows=8"])
    assert set(record["mask_fraction"]) == {"vision", "language"}
    after = weights(tmp_path / "mm")
    changed = sum(int((before[k] != after[k]).sum()) for k in before)
    allowed = sum(int(m.sum()) for m in masks)
    total = sum(m.numel() for m in masks)
    assert 0 < changed <= allowed < total  # something moved, only inside the mask, and the mask is not everything


# --- MANU ---

class Toy(nn.Module):
    """A 'model' whose base_model feeds its input through one projection: importances are mean |x|."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(3, 2)

    def base_model(self, x: torch.Tensor, attention_mask: torch.Tensor, use_cache: bool) -> torch.Tensor:
        return self.proj(x)


def test_neuron_importance_by_hand() -> None:
    model = Toy()
    x = torch.tensor([[[1.0, -2.0, 0.0], [5.0, 5.0, 5.0]], [[-3.0, 0.0, 1.0], [1.0, 2.0, 3.0]]])
    batch = {"x": x, "attention_mask": torch.tensor([[1, 0], [1, 1]]), "labels": torch.zeros(2, 2)}
    attended = neuron_importance(model, {"p": model.proj}, [batch], text={"p"})["p"]
    assert attended.tolist() == pytest.approx([(1 + 3 + 1) / 3, (2 + 0 + 2) / 3, (0 + 1 + 3) / 3])  # the padded token skipped
    every = neuron_importance(model, {"p": model.proj}, [batch], text=set())["p"]
    assert every.tolist() == pytest.approx([10 / 4, 9 / 4, 9 / 4])


def test_pruned_neurons_are_the_highest_forget_over_retain() -> None:
    scores = prune_scores(torch.tensor([1.0, 4.0, 2.0, 0.5]), torch.tensor([1.0, 1.0, 0.1, 0.5]))
    assert scores.tolist() == pytest.approx([1.0, 4.0, 20.0, 1.0], rel=1e-6)
    assert sorted(pruned_neurons(scores, 0.5).tolist()) == [1, 2]
    assert pruned_neurons(scores, 0.01).tolist() == [2]  # at least one


def test_manu_zeroes_neurons_of_the_last_blocks_only(vanilla: Path, smoke_bench: Path, tmp_path: Path) -> None:
    before = weights(vanilla)
    record = unlearn(vanilla, smoke_bench, "manu", "privacy", tmp_path / "manu", ["rows=8", "fraction=0.25", "layers=1"])
    after = weights(tmp_path / "manu")
    model = load_model(vanilla)[0]
    names = {module: name for name, module in model.named_modules()}
    last = {names[mlp_output(decoder_layers(model)[-1])], names[mlp_output(vision_layers(model)[-1])]}
    changed = {key.removesuffix(".weight") for key in before if not torch.equal(before[key], after[key])}
    assert changed == last
    for name in last:
        weight = after[f"{name}.weight"]
        zero_columns = int((weight == 0).all(dim=0).sum())
        assert zero_columns == round(0.25 * weight.shape[1])
    assert sum(record["pruned_neurons"].values()) == sum(round(0.25 * after[f"{n}.weight"].shape[1]) for n in last)

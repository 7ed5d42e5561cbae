"""The method registry, `--set` parsing, relabelling of forget rows, and the two CLI commands."""

from __future__ import annotations

import dataclasses

import pytest
import typer
from typer.testing import CliRunner

from medforget.errors import MedforgetError
from medforget.evaluate.metrics.refusal import REFUSAL_POOL
from medforget.methods import all_methods, get_method, parse_overrides
from medforget.cli import app
from medforget.methods.npo import NPOParams
from medforget.methods.registry import apply_training
from medforget.methods.relabel import preferred, refusal_for
from medforget.models.lora import LoraSettings
from medforget.train.config import TrainConfig

EXPECTED = {"ga", "grad_diff", "kl", "mimic", "npo", "idk_po", "smfa", "retrain", "simnpo", "rmu", "mmunlearner", "manu"}


def test_every_method_is_registered_with_typed_defaults() -> None:
    assert {m.name for m in all_methods()} == EXPECTED
    for method in all_methods():
        params = method.Params()
        assert dataclasses.is_dataclass(params) and method.summary
        for field in dataclasses.fields(params):
            with pytest.raises(dataclasses.FrozenInstanceError):
                setattr(params, field.name, getattr(params, field.name))
        assert isinstance(method.default_config({"config": {}}), TrainConfig)


def test_vision_tower_trains_only_if_it_trained_in_fine_tuning() -> None:
    method = get_method("grad_diff")
    assert method.default_config({"config": {"train_vision": False}}).train_vision is False
    assert method.default_config({"config": {"train_vision": True}}).train_vision is True
    assert method.default_config({"config": {"train_vision": False}}).lr == method.train_defaults.lr


def test_unknown_method_lists_the_known_ones() -> None:
    with pytest.raises(MedforgetError, match="unknown method 'gd'.*grad_diff.*smfa"):
        get_method("gd")


def test_overrides_are_coerced_to_field_types() -> None:
    params, training = parse_overrides(get_method("npo"), ["beta=0.5", "alpha=2", "epochs=1", "max_steps=3", "seed=7"])
    assert params == NPOParams(beta=0.5, alpha=2.0)
    assert isinstance(params.alpha, float)
    assert training == {"epochs": 1.0, "max_steps": 3, "seed": 7}
    assert isinstance(training["max_steps"], int)
    smfa, _ = parse_overrides(get_method("smfa"), ["n_anchor=4", "k=10"])
    assert (smfa.n_anchor, smfa.k) == (4, 10.0) and isinstance(smfa.n_anchor, int)
    retrain, _ = parse_overrides(get_method("retrain"), ["base_model=runs/base"])
    assert retrain.base_model == "runs/base"


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["gamma=1"], r"unknown option 'gamma' for method npo; valid keys: beta: float, alpha: float, epochs: float"),
        (["beta=abc"], r"bad value 'abc' for beta \(expected float\); valid keys: beta: float"),
        (["max_steps=1.5"], r"bad value '1.5' for max_steps \(expected int\)"),
        (["beta=nan"], r"bad value 'nan' for beta"),
        (["beta=0"], r"beta must be > 0"),
        (["alpha=-1"], r"alpha must be >= 0"),
        (["beta"], r"--set expects key=value, got 'beta'"),
        (["beta=1", "beta=2"], r"'beta' is set twice"),
    ],
)
def test_bad_overrides_name_the_key(items: list[str], message: str) -> None:
    with pytest.raises(MedforgetError, match=message):
        parse_overrides(get_method("npo"), items)


def test_training_options_apply_to_the_config() -> None:
    cfg = TrainConfig(epochs=3, lr=1e-4)
    assert apply_training(cfg, {"lr": 5e-4, "max_steps": 2}).lr == 5e-4
    assert apply_training(cfg, {"lora_r": 4}).lora == LoraSettings(r=4, alpha=8)
    assert apply_training(TrainConfig(lora=LoraSettings()), {"lora_r": 0}).lora is None
    with pytest.raises(MedforgetError, match="batch_size must be >= 1"):
        apply_training(cfg, {"batch_size": 0})
    with pytest.raises(MedforgetError, match="lr must be > 0"):
        apply_training(cfg, {"lr": 0.0})


def row(**changes: object) -> dict:
    base = {"id": "P1/full_name/mcq/S1", "task": "mcq", "question": "Who is the patient in this scan?",
            "answer": "Ann Lee", "options": ["Bo Chan", "Ann Lee"], "correct_index": 1, "true_answer": "Ann Lee",
            "is_incorrect": False, "scan_ids": ["S1"]}
    return {**base, **changes}


def test_refusals_are_fixed_per_item_and_varied() -> None:
    assert refusal_for("a") == refusal_for("a") in REFUSAL_POOL
    assert len({refusal_for(f"item-{i}") for i in range(60)}) > len(REFUSAL_POOL) // 2


def test_private_mcq_becomes_an_open_refusal_with_the_same_prompt_text() -> None:
    relabelled = preferred(row())
    assert relabelled["answer"] == refusal_for(row()["id"])
    assert relabelled["task"] == "open" and relabelled["options"] == []
    assert relabelled["question"] == "Who is the patient in this scan?\nA. Bo Chan\nB. Ann Lee"


def test_incorrect_items_prefer_the_true_answer() -> None:
    mcq = preferred(row(answer="Bo Chan", correct_index=0, is_incorrect=True))
    assert (mcq["task"], mcq["answer"], mcq["correct_index"]) == ("mcq", "Ann Lee", 1)
    cloze = preferred(row(task="cloze", question="It treats ___.", answer="gout", true_answer="depression", options=[],
                          correct_index=-1, is_incorrect=True))
    assert (cloze["task"], cloze["question"], cloze["answer"]) == ("cloze", "It treats ___.", "depression")


@pytest.fixture()
def cli() -> typer.Typer:
    return app


def test_methods_command_lists_every_method(cli: typer.Typer) -> None:
    result = CliRunner().invoke(cli, ["methods"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    for name in EXPECTED:
        assert name in result.output
    assert "n_anchor: int = 256" in result.output


def test_unlearn_command_reports_user_errors(cli: typer.Typer, tmp_path) -> None:
    args = ["unlearn", "--model", str(tmp_path / "none"), "--bench", str(tmp_path), "--scenario", "privacy", "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(cli, [*args, "--method", "gd"])
    assert result.exit_code == 2 and "unknown method 'gd'" in result.output
    result = CliRunner().invoke(cli, [*args, "--method", "npo", "--set", "gamma=1"])
    assert result.exit_code == 2 and "unknown option 'gamma'" in result.output
    result = CliRunner().invoke(cli, [*args, "--method", "npo"])
    assert result.exit_code == 2 and "model folder not found" in result.output
    assert not (tmp_path / "out").exists()

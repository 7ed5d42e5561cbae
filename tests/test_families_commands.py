"""Every family the README names through the commands a user runs: `finetune` past a checkpoint, `unlearn`
with a loss method and with `smfa`, `evaluate` on every split, on tiny random models (tests/families.py)
of the smoke benchmark. With the vision tower frozen (the smoke preset's `train_vision` false), every
tower weight must come out of fine-tuning and unlearning unchanged, and tied embeddings stay tied."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from families import FAMILIES
from medforget.cli import app
from medforget.models import loading
from medforget.models.parts import vision_parts
from medforget.train.stages import benchmark_texts
from medforget.world.storage import load_benchmark

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]
# Each loss method on at least one family (idk_po packs preferred and rejected answers on per-sample stacks).
LOSS_METHOD = {"llava": "ga", "llava_next": "grad_diff", "qwen2_vl": "grad_diff", "qwen2_5_vl": "kl", "idefics3": "idk_po", "paligemma": "npo",
               "gemma3": "npo", "llava_onevision": "idk_po"}


def invoke(*args: str) -> None:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, f"{' '.join(args[:1])}: {result.output[-2000:]}{result.exception!r}"


def tower_weights(folder: Path) -> dict[str, torch.Tensor]:
    model, _ = loading.load_model(folder, device="cpu")
    return {name: param.detach().clone() for name, param in vision_parts(model).tower_parameters(model).items()}


@pytest.mark.parametrize("name", list(FAMILIES))
def test_finetune_unlearn_evaluate(name: str, smoke_bench: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = FAMILIES[name]
    base = tmp_path / "base"
    model, processor = spec.build(benchmark_texts(load_benchmark(smoke_bench)), base)
    if not (base / "config.json").is_file():
        model.save_pretrained(base)
        processor.save_pretrained(base)
    if type(processor).__name__.startswith("ImageOnly"):  # no torchvision: AutoProcessor cannot build the real class
        monkeypatch.setattr(loading, "load_processor", lambda source: processor)
    bench = str(smoke_bench)
    # the smoke preset checkpoints every 4 steps: 5 steps write one and finish past it
    invoke("finetune", "--model", str(base), "--bench", bench, "--out", str(tmp_path / "ft"), "--max-steps", "5",
           "--batch-size", "4")
    assert json.loads((tmp_path / "ft" / "training.json").read_text())["config"]["train_vision"] is False
    for method in (LOSS_METHOD[name], "smfa"):
        invoke("unlearn", "--model", str(tmp_path / "ft"), "--bench", bench, "--method", method, "--scenario", "privacy",
               "--out", str(tmp_path / method), "--set", "max_steps=2", "--set", "batch_size=4")
    invoke("evaluate", "--model", str(tmp_path / LOSS_METHOD[name]), "--bench", bench, "--out", str(tmp_path / "eval.json"),
           "--max-new-tokens", "2", "--batch-size", "16")
    metrics = json.loads((tmp_path / "eval.json").read_text())
    assert set(metrics["splits"]) >= {"forget_privacy", "retain", "test_forget", "test_retain", "general", "holdout"}
    assert all(split["n"] > 0 for split in metrics["splits"].values())
    before = tower_weights(base)
    assert before
    for stage in ("ft", LOSS_METHOD[name], "smfa"):
        after = tower_weights(tmp_path / stage)
        assert after.keys() == before.keys()
        assert [key for key in before if not torch.equal(before[key], after[key])] == [], stage
    tuned, _ = loading.load_model(tmp_path / LOSS_METHOD[name], device="cpu")
    assert (tuned.get_output_embeddings().weight is tuned.get_input_embeddings().weight) == spec.tied

"""benchmarks/protect_generic_tower.py on smoke: the attacker folder without the same-patient warm-up loss."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts import load_script, smoke_run_folder

pytestmark = pytest.mark.usefixtures("one_thread")


def script():
    return load_script("protect_generic_tower")


@pytest.fixture(scope="module")
def run_dir(smoke_bench: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return smoke_run_folder(smoke_bench, tmp_path_factory.mktemp("generic") / "smoke-run", "base")


def test_builds_a_run_like_attacker_folder(run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out, module, warmups = tmp_path / "generic", script(), []
    stage = module.run_stage

    def recorded(*args, **kwargs):
        warmups.append(kwargs.get("vision_warmup"))
        return stage(*args, **kwargs)

    monkeypatch.setattr(module, "run_stage", recorded)
    module.main([str(run_dir), "--out", str(out)])
    assert warmups[0].contrastive_weight == 0.0 and warmups[1] is None  # pretraining without the loss; fine-tuning
    assert (out / "bench" / "benchmark.json").is_file()
    for name in ("base", "pretrained", "vanilla"):
        assert (out / "models" / name / "model.safetensors").is_file()
    warmup = json.loads((out / "models" / "pretrained" / "training.json").read_text())["vision_warmup"]
    assert warmup["steps"] > 0  # the tower was warmed up (attribute heads only)
    base = (run_dir / "models" / "base" / "model.safetensors").read_bytes()
    assert (out / "models" / "vanilla" / "model.safetensors").read_bytes() != base


@pytest.mark.parametrize("case", ["used output", "no base model"])
def test_bad_input_is_one_line(run_dir: Path, tmp_path: Path, case: str) -> None:
    source, out = run_dir, tmp_path / "out"
    if case == "used output":
        out.mkdir()
        (out / "x").write_text("x")
    else:
        source = tmp_path / "empty-run"
        (source / "models").mkdir(parents=True)
        (source / "bench").symlink_to((run_dir / "bench").resolve())
    with pytest.raises(SystemExit) as stop:
        script().main([str(source), "--out", str(out)])
    assert str(stop.value).startswith("error:") and "\n" not in str(stop.value)

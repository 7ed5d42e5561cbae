"""benchmarks/protect_classwise.py on smoke: one pattern per patient, inside the budget, judged by protect-eval."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medforget.protect.quality import psnr
from medforget.world import load_benchmark
from scripts import load_script, smoke_run_folder

pytestmark = pytest.mark.usefixtures("one_thread")


def script():
    return load_script("protect_classwise")


@pytest.fixture(scope="module")
def run_dir(smoke_bench: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return smoke_run_folder(smoke_bench, tmp_path_factory.mktemp("classwise") / "smoke-run")


@pytest.mark.parametrize("pattern", ["random", "optimised"])
def test_one_pattern_per_patient_within_the_budget(run_dir: Path, tmp_path: Path, pattern: str) -> None:
    out = tmp_path / pattern
    script().main([str(run_dir), "--pattern", pattern, "--out", str(out), "--steps", "3", "--min-psnr", "30"])
    bench = load_benchmark(run_dir / "bench")
    owner = {s["scan_id"]: s["patient_id"] for s in bench["scans"].select_columns(["scan_id", "patient_id"]).to_list()}
    files = sorted((out / "protected").glob("*.png"))
    assert files
    change: dict[str, list[np.ndarray]] = {}
    for f in files:
        clean = np.asarray(bench.image(f.stem).convert("L")).astype(int)
        protected = np.asarray(Image.open(f)).astype(int)
        assert protected.shape == clean.shape
        assert np.abs(protected - clean).max() <= 8
        assert psnr(clean.astype(np.uint8), protected.astype(np.uint8)) >= 30
        inside = (clean > 8) & (clean < 247)  # where clipping to [0, 255] cannot have cut the pattern
        change.setdefault(owner[f.stem], []).append(np.where(inside, np.sign(protected - clean), 0))
    assert len(change) > 1
    first = {p: c[0] for p, c in change.items()}
    for p, changes in change.items():  # every scan of one patient carries the same pattern (its signs agree)
        for c in changes[1:]:
            both = (c != 0) & (changes[0] != 0)
            assert (c[both] == changes[0][both]).mean() > 0.9
    a, b = list(first.values())[:2]
    both = (a != 0) & (b != 0)
    assert (a[both] == b[both]).mean() < 0.9  # two patients, two patterns
    document = json.loads((out / "eval" / "protect_eval.json").read_text())
    assert {"none", "protected"} <= set(document["conditions"])
    assert document["conditions"]["protected"]["quality"]["psnr_min"] >= 30


def test_a_used_output_folder_is_one_line(run_dir: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("x")
    with pytest.raises(SystemExit) as stop:
        script().main([str(run_dir), "--out", str(tmp_path / "used")])
    assert "error:" in str(stop.value) and "\n" not in str(stop.value)

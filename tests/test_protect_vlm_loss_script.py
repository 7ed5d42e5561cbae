"""Smoke test of benchmarks/protect_vlm_loss.py: both objectives keep the budget and are judged by protect-eval."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medforget.protect.protocol import RESULT_FILE
from medforget.protect.quality import psnr
from medforget.world import load_benchmark
from scripts import load_script, smoke_run_folder

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(("objective", "args", "trace"), [
    ("minmin", ["--rounds", "2", "--train-steps", "1", "--noise-steps", "1", "--train-vision"], ["0", "1"]),
    ("poison", ["--steps", "2"], ["0", "2"]),
])
def test_protection_through_the_vlm_loss_keeps_the_budget(smoke_bench: Path, tmp_path: Path, capsys,
                                                          objective: str, args: list[str], trace: list[str]) -> None:
    run = smoke_run_folder(smoke_bench, tmp_path / "run")
    module = load_script("protect_vlm_loss")
    module.main([str(run), "--objective", objective, *args, "--max-patients", "2"])
    out = capsys.readouterr().out
    lines = [line.split() for line in out.splitlines() if line.split()[:1] in ([trace[0]], [trace[1]])]
    assert len(lines) == 2 and all(len(cols) == 3 and float(cols[1]) > 0 and float(cols[2]) > 0 for cols in lines), out
    document = json.loads((run / f"protect_{objective}" / "eval" / RESULT_FILE).read_text())
    bench = load_benchmark(smoke_bench)
    written = sorted((run / f"protect_{objective}" / "images").iterdir())
    assert document["items"]["protected_scans"] == len(written) > 0
    for path in written:
        clean = np.asarray(bench.image(path.stem), dtype=np.uint8)
        protected = np.asarray(Image.open(path), dtype=np.uint8)
        assert protected.shape == clean.shape and np.abs(protected.astype(int) - clean).max() <= 8
        assert psnr(clean, protected) >= 35.0
    assert document["conditions"]["protected"]["quality"]["psnr_min"] >= 35.0
    assert "# protect-eval: images from" in out
    assert document["settings"]["train"]["train_vision"] is (objective == "minmin")

"""Smoke test of benchmarks/train_mfu.py: the tiny model trains in both loss modes on CPU."""

from __future__ import annotations

from scripts import load_script


def test_train_mfu_tiny_runs_both_modes(capsys) -> None:
    module = load_script("train_mfu")
    module.main(["--tiny", "--steps", "1", "--warmup", "1", "--batch-sizes", "2"])
    out = capsys.readouterr().out
    rows = {cols[0]: cols for cols in map(str.split, out.splitlines()) if cols[:1] in (["plain"], ["medforget"])}
    assert set(rows) == {"plain", "medforget"}, out
    for mode, cols in rows.items():
        assert cols[1] == "2", out
        assert float(cols[2]) > 0, f"{mode}: no samples/s figure\n{out}"
    assert "samples/s" in out

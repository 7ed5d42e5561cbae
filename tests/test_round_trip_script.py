"""benchmarks/round_trip.py on a `smoke` run: the audit of the re-imported data finds, item by item, what the
run's own evaluation found on the same items, and the unlearned model is audited on the imported folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medforget.errors import MedforgetError
from medforget.pipeline import RunConfig, run_pipeline
from scripts import load_script

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def script():
    return load_script("round_trip")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A smoke run with one method (forget ratio 0.3: several forgotten patients, so rates get intervals)."""
    out = tmp_path_factory.mktemp("run") / "smoke"
    cfg = RunConfig(preset="smoke", forget_ratio=0.3, scenarios=["privacy"], methods=["grad_diff"], workers=1)
    run_pipeline(cfg, out, log=lambda line: None)
    return out


def _files(folder: Path) -> dict[str, float]:
    return {str(p.relative_to(folder)): p.stat().st_mtime for p in folder.rglob("*")}


def test_the_audit_finds_what_the_evaluation_found_on_the_same_items(script, run: Path, tmp_path: Path) -> None:
    before = _files(run)
    result = script.round_trip(run, tmp_path / "rt", log=lambda line: None)
    assert _files(run) == before  # the run folder is only read
    evaluation = json.loads((run / "eval" / "vanilla.json").read_text())
    for group, split in (("forget", "forget_privacy"), ("nonmembers", "holdout")):
        g = result["vanilla"][group]
        assert g["evaluation"]["value"] == evaluation["splits"][split]["leak_exact"] == g["evaluation"]["reported"]
        assert g["missing_in_audit"] == 0 and g["replies_compared"] == g["evaluation"]["n"] > 0
        # The same items, asked of the same model through the import path: the same replies, hence the same
        # leak (not merely within noise), and the same membership scores up to float rounding of batching.
        assert g["replies_differ"] == 0
        assert g["audit_same_items"]["value"] == g["evaluation"]["value"] and g["audit_same_items"]["n"] == g["evaluation"]["n"]
        assert g["scores_compared"] > 0 and g["max_score_difference"] < 1e-4
        assert g["audit"]["n"] >= g["evaluation"]["n"]  # the run evaluated a sample of each split; the audit asks all
    auroc = result["vanilla"]["auroc"]
    assert auroc["evaluation"]["value"] == pytest.approx(auroc["evaluation"]["reported"], abs=1e-12)
    assert auroc["audit_same_items"]["value"] == pytest.approx(auroc["evaluation"]["value"], abs=1e-3)
    assert auroc["evaluation"]["ci"] is not None and auroc["audit"]["ci"] is not None
    forget_patients = json.loads((run / "bench" / "benchmark.json").read_text())["forget_patients"]
    assert result["vanilla"]["forget"]["audit"]["patients"] == len(forget_patients) > 1
    unlearned = result["unlearned"]
    assert result["method"] == "grad_diff" and unlearned["auroc"]["value"] == unlearned["auroc"]["reported"]
    # The same unlearning on the re-imported splits (the benchmark's retain and forget_privacy, row for row and
    # in order) gives the run's own unlearned model: the same membership AUROC on the evaluation's items.
    bench = json.loads((run / "bench" / "benchmark.json").read_text())["counts"]
    assert result["unlearn"]["retain_rows"] == bench["retain"] and result["unlearn"]["forget_rows"] == bench["forget_privacy"]
    assert unlearned["audit_same_items"]["auroc"]["value"] == pytest.approx(unlearned["evaluation"]["auroc"]["value"], abs=1e-3)
    assert unlearned["criterion_met"] == (abs(unlearned["auroc"]["value"] - 0.5) <= 0.1)
    for name in ("audit-vanilla/audit.json", "audit-grad_diff/audit.html", "models/grad_diff/unlearning.json", "round_trip.json"):
        assert (tmp_path / "rt" / name).is_file()
    assert not (tmp_path / "rt" / "model" / "training.json").exists()
    lines = "\n".join(script.report_lines(result))
    assert "0 of" in lines and "within 0.1 of 0.5" in lines


def test_refuses_an_output_inside_the_run_and_an_unfinished_run(script, run: Path, tmp_path: Path) -> None:
    with pytest.raises(MedforgetError, match="inside the run folder"):
        script.round_trip(run, run / "round-trip", log=lambda line: None)
    with pytest.raises(MedforgetError, match="no results.json"):
        script.round_trip(tmp_path, tmp_path / "out", log=lambda line: None)


def test_the_runs_report_names_the_request_and_its_siblings_figures(run: Path) -> None:
    """results.json carries the forget request (its level) and the collateral figure on its siblings per model."""
    results = json.loads((run / "results.json").read_text())
    request = results["forget_request"]
    assert request["level"] == "patient" and request["sibling_patients"]
    board = results["leaderboards"]["privacy"]
    assert {"sibling", "sibling_leak"} <= {c["key"] for c in board["columns"]}
    vanilla = next(r for r in board["rows"] if r["kind"] == "vanilla")
    siblings = json.loads((run / "eval" / "vanilla.json").read_text())["siblings"]
    assert vanilla["sibling"] == siblings["mcq_acc"] is not None and vanilla["sibling_leak"] == siblings.get("leak_exact")
    assert "sibling_ci_low" in vanilla and "forget request" in (run / "report.html").read_text()

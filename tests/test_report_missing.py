"""A half-finished run still gets a report: it shows what exists and says what is missing."""

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from medforget.errors import MedforgetError
from medforget.evaluate.run import write_results
from medforget.report import build_report


def record(split: str, right: bool, mia: float | None = None, patient: str = "P1") -> dict:
    return {"id": f"{split}-{right}-{mia}-{patient}", "split": split, "patient_id": patient, "scenario": "privacy", "task": "mcq",
            "field": "full_name", "is_private": True, "correct_index": 0, "pred_index": 0 if right else 1,
            "truth_ratio": 0.5 if right else 2.0, "prediction": "", "mia_min_k_pp": mia, "n_options": 4,
            "is_incorrect": False, "answer": "Ann Lee", "true_answer": "Ann Lee", "fact_id": "", "neighbour": False,
            "condition": "name", "question": "Who is it?", "true_index": 0}


def evaluation(forget_acc: float, auc: float | None = None) -> tuple[dict, list[dict]]:
    """Metrics and records of a model scoring `forget_acc` on forget_privacy (4 items) and 1.0 on retain."""
    right = round(forget_acc * 4)
    records = [record("forget_privacy", i < right, patient=f"P{i}") for i in range(4)] + [record("retain", True)]
    metrics = {"benchmark_hash": "0" * 64, "splits": {
        "forget_privacy": {"mcq_acc": forget_acc, "leak_exact": 0.0, "refusal_rate": 0.0},
        "retain": {"mcq_acc": 1.0}}}
    if auc is not None:
        metrics["membership"] = {"min_k_pp": {"auroc": auc, "tpr_at_1pct_fpr": 0.0}}
    return metrics, records


def write_run(folder: Path, evals: dict[str, tuple[dict, list[dict]]], models: dict | None = None) -> Path:
    for name, (metrics, records) in evals.items():
        write_results(metrics, records, folder / "eval" / f"{name}.json")
    if models is not None:
        (folder / "run.json").write_text(json.dumps({"name": "partial", "scenario": "privacy", "models": models,
                                                     "methods": [m for m, v in models.items() if v["kind"] == "method"]}))
    return folder


class Rows(HTMLParser):
    """First cell of each leaderboard body row, the plot count, and the page's visible text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.rows: list[str] = []
        self.text: list[str] = []
        self.plots = 0
        self._table: str | None = None
        self._body = self._first = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attrs = dict(attrs)
        if tag == "table":
            self._table = attrs.get("id")
        elif tag == "tbody":
            self._body = True
        elif tag == "tr" and self._body and (self._table or "").startswith("leaderboard-"):
            self._first = True
        elif tag == "img" and attrs.get("class") == "plot":
            self.plots += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self._body = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._first and data.strip():
            self.rows.append(data.strip())
            self._first = False


def test_missing_models_files_and_benchmark_are_listed_not_fatal(tmp_path):
    kinds = {"vanilla": "vanilla", "ga": "method", "npo": "method"}
    models = {n: {"kind": k, "method": n if k == "method" else None, "seconds": 10.0, "path": None} for n, k in kinds.items()}
    run = write_run(tmp_path, {"vanilla": evaluation(1.0), "ga": evaluation(0.5)}, models)
    (run / "eval" / "ga.parquet").unlink()
    paths = build_report(run)
    assert {p.name for p in paths.values()} == {"report.html", "leaderboard.md", "results.json"}
    page = Rows(paths["html"].read_text())
    assert page.rows == ["vanilla", "ga (method)", "npo (method)", "random-gibberish (reference)", "always-refuse (reference)"]
    text = " ".join(page.text)
    for missing in ("npo: not evaluated", "ga: per-item records unreadable", "no oracle model",
                    "no benchmark, so no example", "No model has membership scores"):
        assert missing in text, missing
    assert page.plots == 2  # trade-off and per-split bars; no ROC without membership scores
    results = json.loads(paths["json"].read_text())
    rows = {r["model"]: r for r in results["leaderboards"]["privacy"]["rows"]}
    assert rows["npo"]["evaluated"] is False and rows["npo"]["forget"] is None and rows["npo"]["seconds"] == 10.0
    assert rows["ga"]["forget"] == 0.5 and rows["ga"]["forget_quality"] is None
    assert set(results["leaderboards"]) == {"privacy"}  # a privacy-only run
    assert "ues_incorrect" not in {c["key"] for c in results["leaderboards"]["privacy"]["columns"]}
    markdown = paths["markdown"].read_text()
    assert "| npo (method) | – |" in markdown and "## Missing or incomplete" in markdown


def test_without_run_json_kinds_come_from_eval_names(tmp_path):
    run = write_run(tmp_path, {"smfa": evaluation(0.25, 0.55), "oracle": evaluation(0.25, 0.5),
                               "vanilla": evaluation(1.0, 0.9), "base": evaluation(0.25, 0.5)})
    paths = build_report(run)
    page = Rows(paths["html"].read_text())
    assert page.rows == ["base", "vanilla", "oracle", "smfa (method)", "random-gibberish (reference)", "always-refuse (reference)"]
    assert "run.json is missing" in " ".join(page.text)
    comparison = json.loads(paths["json"].read_text())["comparison"]["both"]  # no run.json: one scenario, both
    assert comparison["smfa"]["privleak"]["min_k_pp"] == pytest.approx(0.1)
    assert comparison["smfa"]["ues"]["privacy"]["forgetting"] == pytest.approx(1.0)  # matches the oracle
    assert comparison["vanilla"]["ues"]["privacy"]["forgetting"] == 0.0


def test_a_run_without_methods_says_so(tmp_path):
    run = write_run(tmp_path, {"vanilla": evaluation(1.0), "oracle": evaluation(0.25)},
                    {"vanilla": {"kind": "vanilla"}, "oracle": {"kind": "oracle"}})
    text = " ".join(Rows(build_report(run)["html"].read_text()).text)
    assert "no unlearning methods" in text


def test_nothing_to_report_is_a_user_error(tmp_path):
    with pytest.raises(MedforgetError, match="does not exist"):
        build_report(tmp_path / "missing")
    with pytest.raises(MedforgetError, match="nothing to report"):
        build_report(tmp_path)

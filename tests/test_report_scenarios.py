"""Every model is judged against the oracle of the scenario it was unlearned for, never another's."""

import json

import pytest

from medforget.evaluate.run import write_results
from medforget.report import build_report


def items(split: str, scenario: str, right: int, total: int, ratio: float) -> list[dict]:
    """`total` MCQ records of `split`, `right` of them choosing the trained answer, each with truth ratio `ratio`
    scaled by its position (so two tables with different `ratio` have different truth-ratio distributions)."""
    return [{"id": f"{split}-{i}", "split": split, "patient_id": f"P{i % 3}", "scenario": scenario, "task": "mcq",
             "field": "drug_indication" if scenario == "incorrect" else "mrn", "is_private": scenario == "privacy",
             "is_incorrect": scenario == "incorrect", "correct_index": 0, "pred_index": 0 if i < right else 1,
             "truth_ratio": ratio * (1 + i), "prediction": "", "mia_min_k_pp": None, "fact_id": f"F{i % 4}",
             "neighbour": False, "n_options": 4, "true_index": 1 if scenario == "incorrect" else -1, "condition": "none",
             "question": "q", "answer": "a", "true_answer": "t" if scenario == "incorrect" else "a",
             "options": ["a", "t", "b", "c"], "option_ll": [], "option_ll_norm": [], "answer_tokens": 0,
             "mia_loss": None, "mia_zlib": None, "mia_min_k": None} for i in range(total)]


def evaluation(privacy_right: int, incorrect_right: int, privacy_ratio: float, incorrect_ratio: float) -> tuple[dict, list[dict]]:
    records = (items("forget_privacy", "privacy", privacy_right, 8, privacy_ratio)
               + items("forget_incorrect", "incorrect", incorrect_right, 8, incorrect_ratio)
               + items("retain", "privacy", 8, 8, 1.0))
    splits = {s: {"mcq_acc": sum(r["pred_index"] == 0 for r in records if r["split"] == s) / 8}
              for s in ("forget_privacy", "forget_incorrect", "retain")}
    return {"benchmark_hash": "0" * 64, "splits": splits}, records


@pytest.fixture
def run(tmp_path):
    """vanilla knows everything; oracle@privacy forgot the patients only, oracle@incorrect the corrupted facts
    only; each method behaves exactly like its own scenario's oracle."""
    privacy_oracle, incorrect_oracle = evaluation(1, 8, 5.0, 0.1), evaluation(8, 2, 0.1, 7.0)
    evals = {"vanilla": evaluation(8, 8, 0.1, 0.1), "oracle@privacy": privacy_oracle, "oracle@incorrect": incorrect_oracle,
             "ga@privacy": privacy_oracle, "ga@incorrect": incorrect_oracle}
    for name, (metrics, records) in evals.items():
        write_results(metrics, records, tmp_path / "eval" / f"{name}.json")
    models = {
        "vanilla": {"kind": "vanilla", "scenario": None},
        "oracle@privacy": {"kind": "oracle", "scenario": "privacy"},
        "oracle@incorrect": {"kind": "oracle", "scenario": "incorrect"},
        "ga@privacy": {"kind": "method", "method": "ga", "scenario": "privacy"},
        "ga@incorrect": {"kind": "method", "method": "ga", "scenario": "incorrect"},
    }
    (tmp_path / "run.json").write_text(json.dumps({"name": "two", "scenarios": ["privacy", "incorrect"], "methods": ["ga"],
                                                   "models": models}))
    build_report(tmp_path)
    return json.loads((tmp_path / "results.json").read_text())


def test_each_scenario_has_its_leaderboard_with_its_own_oracle(run):
    assert set(run["leaderboards"]) == {"privacy", "incorrect"}
    names = {s: [r["name"] for r in board["rows"] if r["kind"] != "reference"] for s, board in run["leaderboards"].items()}
    assert names["privacy"] == ["vanilla", "oracle@privacy", "ga@privacy"]
    assert names["incorrect"] == ["vanilla", "oracle@incorrect", "ga@incorrect"]
    for scenario in ("privacy", "incorrect"):
        assert {c["oracle"] for c in run["comparison"][scenario].values()} == {f"oracle@{scenario}"}


def test_a_method_that_matches_its_own_oracle_scores_as_the_oracle(run):
    privacy, incorrect = run["comparison"]["privacy"]["ga@privacy"], run["comparison"]["incorrect"]["ga@incorrect"]
    assert privacy["forget_quality"] == {"forget_privacy": pytest.approx(1.0)}  # only its own forget split
    assert incorrect["forget_quality"] == {"forget_incorrect": pytest.approx(1.0)}
    assert privacy["ues"]["privacy"]["forgetting"] == pytest.approx(1.0) and set(privacy["ues"]) == {"privacy"}
    assert incorrect["ues"]["incorrect"]["forgetting"] == pytest.approx(1.0) and set(incorrect["ues"]) == {"incorrect"}
    # judged against the other scenario's oracle, the same models would look far from it
    assert run["comparison"]["incorrect"]["vanilla"]["forget_quality"]["forget_incorrect"] < 0.05
    assert run["comparison"]["privacy"]["vanilla"]["forget_quality"]["forget_privacy"] < 0.05

"""compare(): forget quality, PrivLeak, UES per scenario and refusal gaps on hand-made metrics and items."""

import json

import pytest
from scipy.stats import ks_2samp

from medforget.evaluate.bootstrap import Resampler
from medforget.evaluate.compare import compare

SCALE = 3  # each (right, total) below is repeated: 30 items per split make every gap clear


def mcq(split: str, scenario: str, right: bool, truth_ratio: float = 1.0, patient: str = "P1") -> dict:
    """An MCQ record answered right or wrong (correct_index 0 of 4 options)."""
    return {"split": split, "scenario": scenario, "task": "mcq", "correct_index": 0, "pred_index": 0 if right else 1,
            "truth_ratio": truth_ratio, "n_options": 4, "patient_id": patient, "fact_id": ""}


def split_items(spec: dict[tuple[str, str], tuple[int, int]], ratios: dict[str, list[float]] | None = None,
                scale: int = SCALE) -> list[dict]:
    """Records from {(split, scenario): (right, total)}, `scale` times over; `ratios` gives a split's truth ratios."""
    out = []
    for (split, scenario), (right, total) in spec.items():
        trs = (ratios or {}).get(split, [1.0] * total)
        out += [mcq(split, scenario, i < right, trs[i], f"P{i}") for _ in range(scale) for i in range(total)]
    return out


# Per (split, scenario): (right answers, items). test_forget mixes both scenarios, with different accuracies.
VANILLA = {("forget_privacy", "privacy"): (8, 10), ("forget_incorrect", "incorrect"): (9, 10),
           ("test_forget", "privacy"): (6, 10), ("test_forget", "incorrect"): (10, 10),
           ("retain", "privacy"): (9, 10), ("test_retain", "privacy"): (8, 10), ("general", "general"): (5, 10)}
ORACLE = {("forget_privacy", "privacy"): (2, 10), ("forget_incorrect", "incorrect"): (1, 10),
          ("test_forget", "privacy"): (2, 10), ("test_forget", "incorrect"): (2, 10),
          ("retain", "privacy"): (9, 10), ("test_retain", "privacy"): (8, 10), ("general", "general"): (5, 10)}
HALFWAY = {("forget_privacy", "privacy"): (5, 10), ("forget_incorrect", "incorrect"): (9, 10),
           ("test_forget", "privacy"): (6, 10), ("test_forget", "incorrect"): (10, 10),
           ("retain", "privacy"): (9, 10), ("test_retain", "privacy"): (4, 10), ("general", "general"): (5, 10)}

RATIOS = {
    "vanilla": [0.1, 0.2, 0.15, 0.3, 0.05, 0.12, 0.22, 0.09, 0.3, 0.18],
    "oracle": [0.9, 1.2, 1.1, 0.8, 1.4, 0.95, 1.05, 1.3, 0.7, 1.0],
    "ga": [0.5, 0.9, 1.0, 0.3, 1.2, 0.6, 0.4, 1.1, 0.8, 0.25],
}


def _metrics(auc: dict[str, float], refusal: dict[str, float]) -> dict:
    return {"splits": {s: {"refusal_rate": r, "mcq_acc": 0.5} for s, r in refusal.items()},
            "membership": {a: {"auroc": v, "tpr_at_1pct_fpr": 0.0} for a, v in auc.items()}}


@pytest.fixture
def result() -> dict:
    models = {
        "vanilla": _metrics({"min_k_pp": 0.9, "loss": 0.8}, {"forget_privacy": 0.0, "test_forget": 0.0, "holdout": 0.0}),
        "oracle": _metrics({"min_k_pp": 0.5, "loss": 0.4}, {"forget_privacy": 0.1, "test_forget": 0.1, "holdout": 0.1}),
        "ga": _metrics({"min_k_pp": 0.6, "zlib": 0.7}, {"forget_privacy": 0.8, "test_forget": 0.5, "holdout": 0.1}),
    }
    specs = {"vanilla": VANILLA, "oracle": ORACLE, "ga": HALFWAY}
    items = {name: split_items(spec, {"forget_privacy": RATIOS[name]}) for name, spec in specs.items()}
    return compare(models, items)


def test_forget_quality_is_the_ks_p_value_against_the_oracle(result):
    for name in ("vanilla", "ga"):
        expected = ks_2samp(RATIOS[name] * SCALE, RATIOS["oracle"] * SCALE).pvalue
        assert result[name]["forget_quality"]["forget_privacy"] == pytest.approx(expected)
    assert result["oracle"]["forget_quality"]["forget_privacy"] == pytest.approx(1.0)
    assert result["vanilla"]["forget_quality"]["forget_privacy"] < 0.01  # disjoint distributions
    # forget_incorrect was evaluated too: all truth ratios 1.0 in every model -> identical distributions.
    assert result["ga"]["forget_quality"]["forget_incorrect"] == pytest.approx(1.0)


def test_privleak_per_attack_in_both_membership_sections(result):
    assert result["vanilla"]["privleak"] == pytest.approx({"min_k_pp": (0.9 - 0.5) / 0.5, "loss": (0.8 - 0.4) / 0.4})
    assert result["ga"]["privleak"] == pytest.approx({"min_k_pp": 0.1 / 0.5})  # zlib: the oracle has none
    assert result["oracle"]["privleak"] == pytest.approx({"min_k_pp": 0.0, "loss": 0.0})


def test_vanilla_forgets_nothing_and_the_oracle_everything(result):
    for scenario in ("privacy", "incorrect"):
        assert result["vanilla"]["ues"][scenario]["forgetting"] == 0.0
        assert result["vanilla"]["ues"][scenario]["ues"] == 0.0
        assert result["oracle"]["ues"][scenario]["forgetting"] == pytest.approx(1.0)
        assert result["oracle"]["ues"][scenario]["utility"] == pytest.approx(1.0)


def test_ues_scores_each_scenario_on_its_own_test_forget_items(result):
    privacy, incorrect = result["ga"]["ues"]["privacy"], result["ga"]["ues"]["incorrect"]
    assert privacy["scores"] == pytest.approx(
        {"forget_privacy": 0.5, "test_forget": 0.6, "retain": 0.9, "test_retain": 0.4, "general": 0.5})
    assert incorrect["scores"]["test_forget"] == pytest.approx(1.0)
    # privacy: forget_privacy 1 - |0.5-0.2|/0.6 = 0.5, test_forget (privacy items) 1 - 0.4/0.4 = 0.
    # No base model: utility from chance (1/4): retain 1, test_retain (0.4-0.25)/(0.8-0.25), general 1.
    f, u = (0.5 + 0.0) / 2, (1.0 + 0.15 / 0.55 + 1.0) / 3
    assert privacy["reference"] == "chance"
    assert privacy["forgetting"] == pytest.approx(f)
    assert privacy["utility"] == pytest.approx(u)
    assert privacy["ues"] == pytest.approx(2 * f * u / (f + u))
    assert incorrect["forgetting"] == 0.0 and incorrect["ues"] == 0.0
    gen_missing = {"forget_privacy gen", "test_forget gen", "retain gen", "test_retain gen"}  # MCQ-only items
    assert {s for s, _ in privacy["skipped"]} == gen_missing


def test_utility_is_measured_from_the_base_model_when_the_run_has_one():
    base = {("retain", "privacy"): (3, 10), ("test_retain", "privacy"): (3, 10), ("general", "general"): (5, 10)}
    models = {n: {"splits": {}} for n in ("vanilla", "oracle", "base")}
    items = {"vanilla": split_items(VANILLA), "oracle": split_items(ORACLE), "base": split_items(base)}
    out = compare(models, items, scenario="privacy")
    ues = out["oracle"]["ues"]["privacy"]
    assert ues["reference"] == "base"
    assert ["general", "vanilla not above the base"] in ues["skipped"]  # vanilla 0.5 = base 0.5
    assert out["base"]["ues"]["privacy"]["utility"] == 0.0  # (no forget items: F and UES are None)


def test_ues_interval_from_a_resampler_brackets_the_point_value(result):
    models = {n: {"splits": {}} for n in ("vanilla", "oracle", "ga")}
    items = {name: split_items(spec) for name, spec in (("vanilla", VANILLA), ("oracle", ORACLE), ("ga", HALFWAY))}
    out = compare(models, items, scenario="privacy", resampler=Resampler.for_records(*items.values(), n=200))
    ues = out["ga"]["ues"]["privacy"]
    low, high = ues["ci"]["ues"]
    assert low <= ues["ues"] <= high and high - low > 0


def test_refusal_rates_and_gaps_to_the_oracle(result):
    refusal = result["ga"]["refusal"]
    assert refusal["rates"] == {"forget_privacy": 0.8, "test_forget": 0.5, "holdout": 0.1}
    assert refusal["oracle_gap"] == pytest.approx({"forget_privacy": 0.7, "test_forget": 0.4, "holdout": 0.0})
    assert refusal["forget_vs_holdout"] == pytest.approx(0.7)  # refuses only about the forgotten patients
    assert result["oracle"]["refusal"]["oracle_gap"] == pytest.approx({s: 0.0 for s in refusal["rates"]})


def test_skipped_splits_keep_their_reasons_and_a_fully_skipped_scenario_is_none():
    same = {("forget_privacy", "privacy"): (5, 10), ("retain", "privacy"): (9, 10), ("general", "general"): (0, 10)}
    # general: vanilla 0 is below chance (1/4), so it cannot show utility
    models = {n: {"splits": {}} for n in ("vanilla", "oracle", "m")}
    out = compare(models, {n: split_items(same) for n in models})
    ues = out["m"]["ues"]["privacy"]
    reasons = dict(map(tuple, ues["skipped"]))
    assert "vanilla vs oracle" in reasons["forget_privacy"]  # vanilla = oracle: cannot show forgetting
    assert reasons["test_forget"] == "missing score"
    assert reasons["test_retain"] == "missing score"
    assert reasons["general"] == "vanilla not above the base"
    assert ues["forgetting"] is None and ues["ues"] is None  # NaN becomes None
    assert ues["utility"] == pytest.approx(1.0)
    json.dumps(out, allow_nan=False)  # strict JSON


def test_missing_oracle_and_items_give_notes_not_errors():
    models = {"vanilla": _metrics({"min_k_pp": 0.9}, {"holdout": 0.0}), "ga": _metrics({"min_k_pp": 0.6}, {})}
    out = compare(models, {"vanilla": split_items(VANILLA)}, scenario="privacy")
    notes = " ".join(out["ga"]["notes"])
    assert "no per-item records" in notes and "no oracle" in notes
    assert out["ga"]["privleak"] == {}
    assert out["ga"]["forget_quality"] == {"forget_privacy": None}
    assert out["ga"]["ues"]["privacy"]["ues"] is None
    assert out["ga"]["refusal"] == {"rates": {}, "oracle_gap": {}}


def test_a_gap_carried_by_one_patient_is_left_out_given_the_bootstrap():
    """30 items of one patient pass the count rules, but one patient says nothing about patients."""
    one = {"vanilla": [mcq("forget_privacy", "privacy", True, patient="P0") for _ in range(30)],
           "oracle": [mcq("forget_privacy", "privacy", False, patient="P0") for _ in range(30)]}
    models = {n: {"splits": {}} for n in one}
    plain = compare(models, one, scenario="privacy")["oracle"]["ues"]["privacy"]
    clustered = compare(models, one, scenario="privacy", resampler=Resampler.for_records(*one.values(), n=100))
    assert plain["kept"]["forget"] == ["forget_privacy"]
    ues = clustered["oracle"]["ues"]["privacy"]
    assert ues["kept"]["forget"] == [] and "one patient or fact" in dict(map(tuple, ues["skipped"]))["forget_privacy"]

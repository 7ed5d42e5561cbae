"""Reference models built from score tables: what base, vanilla, oracle and degenerate models score on the UES.

A world of 30 forgotten patients, 30 corrupted facts and 30 kept patients, each asked as MCQ and as an
open question: vanilla knows everything it was tuned on (the corrupted facts too), the oracle and the
base model answer the forgotten items with well-formed wrong values (the oracle answers the corrupted
facts with the true ones), only vanilla and oracle know the kept patients.
"""

import pytest

from medforget.evaluate.bootstrap import Resampler, interval
from medforget.evaluate.compare import compare
from medforget.evaluate.efficiency import scenario_ues
from medforget.evaluate.references import ALWAYS_REFUSE, RANDOM_GIBBERISH, reference_records

N = 30
KNOWN = {"drug": {"aspirin", "heparin", "ibuprofen", "warfarin"}}
NAMES = ("Maria Okafor", "Lena Brandt", "Tom Weller", "Ana Silva")


def item(split: str, scenario: str, task: str, i: int, answer: str, true: str, **kw) -> dict:
    field = "full_name" if scenario == "privacy" else "drug"
    options = sorted({answer, true, *(KNOWN["drug"] if field == "drug" else NAMES)})[:4] if task == "mcq" else []
    return {"id": f"{split}-{scenario}-{task}-{i}", "split": split, "scenario": scenario, "task": task, "condition": "name",
            "field": field, "is_private": scenario == "privacy", "is_incorrect": scenario == "incorrect",
            "question": "Which one?", "answer": answer, "true_answer": true, "neighbour": False,
            "patient_id": f"{split}-P{i}" if scenario != "incorrect" else "", "fact_id": f"F{i}" if scenario == "incorrect" else "",
            "n_options": len(options) or 4, "correct_index": options.index(answer) if options else 0,
            "true_index": options.index(true) if options else -1, "options": options, "prediction": "", "pred_index": -1,
            "truth_ratio": None, "mia_min_k_pp": None, **kw}


def answered(rec: dict, knows: bool, wrong: str) -> dict:
    """The item answered: the trained answer when the model `knows` it, else `wrong` (a well-formed value)."""
    value = rec["answer"] if knows else wrong
    if rec["task"] == "mcq":
        return {**rec, "pred_index": rec["options"].index(value) if value in rec["options"] else (rec["correct_index"] + 1) % 4}
    return {**rec, "prediction": f"It is {value}."}


def world() -> list[tuple[dict, str]]:
    """(item, the behaviour key) for every item."""
    out = []
    for i in range(N):
        name, other = NAMES[i % 4], NAMES[(i + 1) % 4]
        for task in ("mcq", "open"):
            out.append((item("forget_privacy", "privacy", task, i, name, name), "forget_privacy"))
            out.append((item("test_forget", "privacy", task, i, name, name), "forget_privacy"))
            out.append((item("forget_incorrect", "incorrect", task, i, "warfarin", "aspirin"), "forget_incorrect"))
            out.append((item("retain", "privacy", task, i, other, other), "retain"))
        out.append((item("general", "general", "mcq", i, "heparin", "heparin"), "general"))
    return out


def model(kind: str) -> list[dict]:
    records = []
    for rec, group in world():
        if group == "forget_privacy":
            records.append(answered(rec, kind == "vanilla", "Jon Smith" if rec["task"] == "open" else NAMES[(NAMES.index(rec["answer"]) + 1) % 4]))
        elif group == "forget_incorrect":
            records.append(answered(rec, kind == "vanilla", rec["true_answer"]))
        elif group == "retain":
            records.append(answered(rec, kind != "base", "Jon Smith" if rec["task"] == "open" else NAMES[(NAMES.index(rec["answer"]) + 1) % 4]))
        else:
            records.append(answered(rec, int(rec["id"].rsplit("-", 1)[1]) % 2 == 0, "aspirin"))
    return records


@pytest.fixture(scope="module")
def scores() -> dict[str, dict]:
    items = {name: model(name) for name in ("base", "vanilla", "oracle")}
    items.update(reference_records(items["vanilla"]))
    resampler = Resampler.for_records(*items.values(), n=200)
    models = {n: {"splits": {}} for n in items}
    out = {}
    for scenario in ("privacy", "incorrect"):
        cmp = compare(models, items, scenario=scenario, known=KNOWN, resampler=resampler)
        out[scenario] = {n: c["ues"][scenario] for n, c in cmp.items()}
    return out


@pytest.mark.parametrize("scenario", ["privacy", "incorrect"])
def test_reference_models_score_what_they_deserve(scores, scenario):
    ues = {n: s["ues"] for n, s in scores[scenario].items()}
    assert ues["vanilla"] <= 0.05
    assert ues["oracle"] >= 0.95
    assert ues["base"] <= 0.15  # forgets like the oracle, but kept nothing fine-tuning added
    assert ues[RANDOM_GIBBERISH] <= 0.10  # MCQ at chance, no leak, but babbles where the oracle answers
    assert ues[ALWAYS_REFUSE] <= 0.30  # leaks nothing, but refuses where the oracle answers
    assert scores[scenario][ALWAYS_REFUSE]["behaviour"] == 0.0


@pytest.mark.parametrize("scenario", ["privacy", "incorrect"])
def test_splits_are_chosen_once_for_every_model(scores, scenario):
    kept = {str(s["kept"]) for s in scores[scenario].values()}
    assert len(kept) == 1
    assert "general" not in scores["privacy"]["oracle"]["kept"]["utility"]  # vanilla no better than the base there
    assert ["general", "vanilla not above the base"] in scores[scenario]["oracle"]["skipped"]
    assert {"retain", "retain gen"} <= set(scores[scenario]["oracle"]["kept"]["utility"])
    assert len(scores[scenario]["oracle"]["kept"]["forget"]) >= 2  # MCQ and generated answers


def test_intervals_bracket_the_point_values(scores):
    for s in scores["privacy"].values():
        low, high = s["ci"]["ues"]
        assert low - 1e-9 <= s["ues"] <= high + 1e-9


def test_keeping_the_samples_changes_no_figure():
    """`keep_samples` adds the replicates the intervals come from, and nothing else (the report never asks)."""
    items = {name: model(name) for name in ("base", "vanilla", "oracle")}
    items.update(reference_records(items["vanilla"]))
    resampler = Resampler.for_records(*items.values(), n=200)
    names = list(items)
    plain = scenario_ues("privacy", items, names, "vanilla", "oracle", "base", KNOWN, resampler)
    kept = scenario_ues("privacy", items, names, "vanilla", "oracle", "base", KNOWN, resampler, keep_samples=True)
    assert all("samples" not in e for e in plain.values())
    for name in names:
        samples = kept[name].pop("samples")
        assert kept[name] == plain[name]
        assert samples["ues"].shape == (200,)
        assert interval(samples["ues"]) == plain[name]["ci"]["ues"]

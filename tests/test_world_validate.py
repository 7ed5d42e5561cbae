"""`validate` catches each kind of corruption planted in a good benchmark."""

import json
import shutil
from pathlib import Path

import pytest
from datasets import Dataset, DatasetDict, load_from_disk

from medforget.errors import MedforgetError
from medforget.world.storage import ROW_FEATURES
from medforget.world.validate import validate


def _planted(src: Path, dst: Path, edit) -> Path:
    """Copy the benchmark, let `edit(rows_by_split, meta)` change it, save it back like a hand edit would."""
    dd = load_from_disk(str(src))
    rows = {name: dd[name].to_list() for name in dd if name != "scans"}
    meta = json.loads((src / "benchmark.json").read_text())
    scans = dd["scans"]
    scans = edit(rows, meta, scans) or scans
    out = {name: Dataset.from_list(r, features=ROW_FEATURES) for name, r in rows.items()}
    out["scans"] = scans
    DatasetDict(out).save_to_disk(str(dst))
    meta["counts"] = {name: len(d) for name, d in out.items()}
    (dst / "benchmark.json").write_text(json.dumps(meta))
    return dst


def _first(rows, **where):
    return next(r for r in rows if all(r[k] == v for k, v in where.items()))


def plant_broken_mcq(rows, meta, scans):
    _first(rows["retain"], task="mcq")["correct_index"] = 9


def plant_forget_in_retain(rows, meta, scans):
    rows["retain"].append(dict(rows["forget_privacy"][0], split="retain"))


def plant_holdout_in_train(rows, meta, scans):
    row = dict(rows["holdout"][0], split="train", id="planted")
    rows["train"].append(row)
    rows["retain"].append(dict(row, split="retain"))


def plant_test_scan_in_train(rows, meta, scans):
    test_row = _first(rows["test_retain"], condition="image")
    for split in ("train", "retain"):
        _first(rows[split], id=_first(rows["retain"], condition="image")["id"])["scan_ids"] = test_row["scan_ids"]


def plant_test_paraphrase_in_train(rows, meta, scans):
    template = _first(rows["test_retain"], task="open", condition="name")["template_id"]
    target = _first(rows["retain"], task="open", condition="name")["id"]
    for split in ("train", "retain"):
        _first(rows[split], id=target)["template_id"] = template


def plant_missing_scan(rows, meta, scans):
    _first(rows["general"])["scan_ids"] = ["P99999-S1"]


def plant_unreadable_image(rows, meta, scans):
    return scans.map(lambda r, i: {"image": {"bytes": b"not a png", "path": None}} if i == 0 else {}, with_indices=True)


def plant_changed_answer(rows, meta, scans):
    for split in ("train", "retain"):
        _first(rows[split], id=rows["retain"][0]["id"])["answer"] += " (edited)"
    for split in ("train", "retain"):
        r = _first(rows[split], id=rows["retain"][0]["id"])
        r["true_answer"] = r["answer"]
        if r["options"]:
            r["options"][r["correct_index"]] = r["answer"]


def plant_dropped_train_row(rows, meta, scans):
    rows["train"].pop()


def plant_kin_with_the_patients_surname(rows, meta, scans):
    """The old next of kin: the patient's family name, which a question naming the patient gives away."""
    row = _first(rows["holdout"], field="next_of_kin", condition="name", task="open")
    surname = _first(rows["holdout"], field="full_name", patient_id=row["patient_id"])["answer"].split()[-1]
    row["answer"] = row["true_answer"] = f"Samuel {surname} (spouse)"


def plant_sex_asked_by_name(rows, meta, scans):
    row = _first(rows["holdout"], field="date_of_birth", condition="name", task="open")
    row.update(field="sex", answer="female", true_answer="female")


@pytest.mark.parametrize("plant, check", [
    (plant_broken_mcq, "rows:"),
    (plant_forget_in_retain, "leakage: forget item"),
    (plant_holdout_in_train, "holdout patient"),
    (plant_test_scan_in_train, "shows test scan"),
    (plant_test_paraphrase_in_train, "test paraphrase"),
    (plant_missing_scan, "not in 'scans'"),
    (plant_unreadable_image, "unreadable"),
    (plant_changed_answer, "hash:"),
    (plant_dropped_train_row, "train is not exactly"),
    (plant_kin_with_the_patients_surname, "answer shares a name token with its question"),
    (plant_sex_asked_by_name, "asks the sex of a patient it names"),
])
def test_validate_catches_planted_corruption(smoke_bench, tmp_path, plant, check):
    assert validate(smoke_bench) == []
    bad = _planted(smoke_bench, tmp_path / "bad", plant)
    problems = validate(bad)
    assert any(check in p for p in problems), problems


def test_a_giveaway_row_is_one_line_that_names_the_row_not_the_patient(smoke_bench, tmp_path):
    bad = _planted(smoke_bench, tmp_path / "bad", plant_kin_with_the_patients_surname)
    planted = _first(load_from_disk(str(bad))["holdout"].to_list(), field="next_of_kin", condition="name", task="open")
    lines = [p for p in validate(bad) if p.startswith("answerable:")]
    assert lines == [f"answerable: holdout row {planted['id']!r}: the answer shares a name token with its question"]


def test_unreadable_metadata_and_missing_folders_raise_clear_errors(smoke_bench, tmp_path):
    with pytest.raises(MedforgetError, match="does not exist"):
        validate(tmp_path / "nowhere")
    bad = tmp_path / "bad"
    shutil.copytree(smoke_bench, bad)
    (bad / "benchmark.json").write_text('{"version": 1, "seed": ')
    with pytest.raises(MedforgetError, match="not valid JSON"):
        validate(bad)
    (bad / "benchmark.json").unlink()
    with pytest.raises(MedforgetError, match="benchmark.json is missing"):
        validate(bad)


def test_missing_split_is_reported(smoke_bench, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(smoke_bench, bad)
    shutil.rmtree(bad / "holdout")
    dd = json.loads((bad / "dataset_dict.json").read_text())
    dd["splits"].remove("holdout")
    (bad / "dataset_dict.json").write_text(json.dumps(dd))
    assert any("'holdout' is missing" in p for p in validate(bad))

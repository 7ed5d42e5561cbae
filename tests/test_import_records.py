"""`medforget import records`: JSONL and CSV records, forget requests at every level, validation, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from medforget.cli import app
from medforget.errors import MedforgetError
from medforget.importers import import_dataset
from medforget.world.storage import load_benchmark
from medforget.world.validate import validate

RECORDS = [
    {"patient_id": "A", "question": "What is the home address of the patient in this scan?", "answer": "1 Elm Road",
     "images": ["a1.png"], "field": "address", "institution": "H1", "study_id": "st1"},
    {"patient_id": "A", "question": "What is the medical record number of the patient in this scan?", "answer": "MRN-1",
     "images": ["a2.png"], "field": "mrn", "institution": "H1", "study_id": "st2"},
    {"patient_id": "B", "question": "What is the medical record number of the patient in this scan?", "answer": "MRN-2",
     "images": ["b1.png"], "field": "mrn", "institution": "H1"},
    {"patient_id": "C", "question": "Which drug does this patient take?", "answer": "aspirin", "options": ["aspirin", "ibuprofen"],
     "field": "medication", "is_private": False, "institution": "H2"},
]


def write_records(folder: Path, records: list[dict] = RECORDS, name: str = "train.jsonl") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for r in records:
        for i, image in enumerate(r.get("images", [])):
            Image.new("L", (16, 16), 40 * i + len(image)).save(folder / image)
    path = folder / name
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture()
def src(tmp_path: Path) -> Path:
    write_records(tmp_path / "src", [{"patient_id": "Z", "question": "What is the MRN of Z?", "answer": "MRN-9", "field": "mrn"}], "non.jsonl")
    return write_records(tmp_path / "src")


def test_jsonl_import_is_valid_and_splits_the_forget_request(src: Path, tmp_path: Path) -> None:
    (tmp_path / "forget.txt").write_text("# erasure requests\nA\n")
    meta = import_dataset("records", src, tmp_path / "out", forget=tmp_path / "forget.txt", nonmembers=[src.parent / "non.jsonl"])
    assert validate(tmp_path / "out") == []
    bench = load_benchmark(tmp_path / "out")
    assert set(bench["forget_privacy"]["patient_id"]) == {"A"} and set(bench["retain"]["patient_id"]) == {"B", "C"}
    assert bench["holdout"]["patient_id"] == ["Z"] and len(bench["scans"]) == 3
    assert meta["forget_request"] == {"level": "patient", "rows": 2, "patients": ["A"], "affected_patients": ["A"], "sibling_patients": ["B"]}
    mcq = [r for r in bench["train"] if r["task"] == "mcq"][0]
    assert mcq["options"][mcq["correct_index"]] == "aspirin" and not mcq["is_private"]


@pytest.mark.parametrize("request_, level, rows, whole, siblings", [
    ({"institutions": ["H1"]}, "hospital", 3, ["A", "B"], []),
    ({"studies": ["st1"]}, "scan", 1, [], ["A"]),
    ({"fields": [{"patient_id": "A", "field": "mrn"}]}, "field", 1, [], ["A"]),
    ({"patients": ["B"]}, "patient", 1, ["B"], ["A"]),
])
def test_forget_levels(src: Path, tmp_path: Path, request_: dict, level: str, rows: int, whole: list, siblings: list) -> None:
    (tmp_path / "forget.json").write_text(json.dumps(request_))
    meta = import_dataset("records", src, tmp_path / "out", forget=tmp_path / "forget.json")
    request = meta["forget_request"]
    assert (request["level"], request["rows"], request["patients"], request["sibling_patients"]) == (level, rows, whole, siblings)
    assert validate(tmp_path / "out") == []


def test_csv_records(tmp_path: Path) -> None:
    folder = tmp_path / "csv"
    folder.mkdir()
    Image.new("L", (8, 8)).save(folder / "x.png")
    (folder / "r.csv").write_text("patient_id,question,answer,images,field,is_private,options\n"
                                  "P1,Who is the patient in this scan?,Ann Lee,x.png,full_name,true,\n"
                                  "P1,Sex of the patient in this scan?,female,x.png,sex,yes,female|male\n")
    import_dataset("records", folder / "r.csv", tmp_path / "out")
    bench = load_benchmark(tmp_path / "out")
    assert bench["train"]["task"] == ["open", "mcq"] and len(bench["scans"]) == 1
    assert validate(tmp_path / "out") == []


@pytest.mark.parametrize("line, message", [
    ({"patient_id": "A", "question": "q?"}, "train.jsonl line 1: missing answer"),
    ({"patient_id": "A", "question": "q?", "answer": "x", "images": ["nope.png"]}, "train.jsonl line 1: image"),
    ({"patient_id": "A", "question": "q?", "answer": "x", "colour": "red"}, "unknown column 'colour'"),
    ({"patient_id": "A", "question": "q?", "answer": "x", "options": ["y", "z"]}, "the answer is not one of the options"),
])
def test_one_line_errors_name_file_and_record(tmp_path: Path, line: dict, message: str) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(line) + "\n")
    with pytest.raises(MedforgetError, match=message):
        import_dataset("records", path, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing half written


def test_forget_request_naming_an_unknown_patient(src: Path, tmp_path: Path) -> None:
    (tmp_path / "forget.txt").write_text("A\nNOBODY\n")
    with pytest.raises(MedforgetError, match="forget.txt: patient 'NOBODY' is not in the data"):
        import_dataset("records", src, tmp_path / "out", forget=tmp_path / "forget.txt")


def test_member_and_nonmember_at_once_is_refused(src: Path, tmp_path: Path) -> None:
    with pytest.raises(MedforgetError, match="both members and non-members"):
        import_dataset("records", src, tmp_path / "out", nonmembers=[src])


def test_cli_import_prints_splits_and_errors_in_one_line(src: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["import", "records", str(src), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "forget_privacy" in result.output and "level none" in result.output
    assert runner.invoke(app, ["validate", str(tmp_path / "out")]).exit_code == 0
    bad = runner.invoke(app, ["import", "records", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o2")])
    assert bad.exit_code == 2 and "Traceback" not in bad.output


def test_a_record_without_patient_is_a_general_item_that_stays(tmp_path: Path) -> None:
    """General items (knowledge, image reading) are trained on and kept; they may show a patient's image."""
    general = [{"question": "Which organ does this scan show?", "answer": "liver", "images": ["a1.png"], "is_private": True},
               {"question": "The largest gland is the ___.", "answer": "liver"}]
    src = write_records(tmp_path / "src", [*general, *RECORDS])
    (tmp_path / "forget.txt").write_text("A\n")
    import_dataset("records", src, tmp_path / "out", forget=tmp_path / "forget.txt")
    assert validate(tmp_path / "out") == []
    bench = load_benchmark(tmp_path / "out")
    items = [r for r in bench["retain"] if not r["patient_id"]]
    assert [r["question"] for r in items] == [g["question"] for g in general]
    assert all(r["scenario"] == "general" and not r["is_private"] for r in items) and items[1]["task"] == "cloze"
    assert set(bench["forget_privacy"]["patient_id"]) == {"A"} and len(bench["forget_privacy"]) == 2
    owner = {s["scan_id"]: s["patient_id"] for s in bench["scans"]}
    assert owner[items[0]["scan_ids"][0]] == "A"  # the image is A's (their record shows it too)

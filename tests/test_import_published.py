"""The published layouts (MLLMU-Bench, CLEAR, MedForget) on tiny parquet files written here in each layout."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from medforget.errors import MedforgetError
from medforget.importers import import_dataset
from medforget.world.storage import load_benchmark
from medforget.world.validate import validate


def image(shade: int) -> dict:
    buf = io.BytesIO()
    Image.new("RGB", (12, 12), (shade, shade, shade)).save(buf, format="JPEG")
    return {"bytes": buf.getvalue(), "path": None}


def write(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def mllmu_train(folder: Path) -> Path:
    return write(folder / "train-00000-of-00001.parquet", [
        {"ID": str(i), "image": image(30 * i), "metadata": json.dumps([
            {"Question": f"What is the occupation of person {i}?", "Answer": f"job {i}"},
            {"Question": f"Where was person {i} born?", "Answer": f"town {i}"}])} for i in range(1, 4)])


def test_mllmu_training_split_with_a_forget_set(tmp_path: Path) -> None:
    src = mllmu_train(tmp_path / "train")
    forget = write(tmp_path / "Forget" / "train-00000-of-00001.parquet", [{"ID": "2", "Classification_Task": "{}"}])
    meta = import_dataset("mllmu", src, tmp_path / "out", forget=forget)
    assert validate(tmp_path / "out") == []
    bench = load_benchmark(tmp_path / "out")
    assert meta["forget_patients"] == ["2"] and len(bench["forget_privacy"]) == 2 and len(bench["retain"]) == 4
    assert all(r["scan_ids"] for r in bench["train"])


def test_mllmu_evaluation_set_is_refused_with_the_split_to_use(tmp_path: Path) -> None:
    src = write(tmp_path / "Forget.parquet", [{"ID": "1", "image": image(1), "Classification_Task": "{}", "Mask_Task": "[]",
                                                "Generation_Task": "[]"}])
    with pytest.raises(MedforgetError, match="evaluation set .* import the training split"):
        import_dataset("mllmu", src, tmp_path / "out")


def clear_rows(names: list[str]) -> list[dict]:
    return [{"image": image(40 * i), "caption": f"{n} smiles at a cafe.", "name": n, "question": f"What does {n} write?",
             "answer": "novels", "options": json.dumps(["novels", "poems", "plays"]), "paraphrased_caption": "-",
             "perturbed_captions": ["-"], "perturbed_names": ["-"]} for i, n in enumerate(names)]


def test_clear_forget_split_reads_its_retain_split(tmp_path: Path) -> None:
    src = write(tmp_path / "forget10.parquet", clear_rows(["Ava Lind"]))
    write(tmp_path / "retain90.parquet", clear_rows(["Bo Chen", "Cy Ode"]))
    meta = import_dataset("clear", src, tmp_path / "out")
    assert validate(tmp_path / "out") == []
    bench = load_benchmark(tmp_path / "out")
    assert meta["forget_patients"] == ["Ava Lind"] and set(bench["retain"]["patient_id"]) == {"Bo Chen", "Cy Ode"}
    # who, caption, the row's MCQ, and the name among perturbed_names ["-"]; the caption choice needs a perturbed
    # caption other than the paraphrase, and both are "-"
    assert sorted(bench["forget_privacy"]["task"]) == ["mcq", "mcq", "open", "open"]
    with pytest.raises(MedforgetError, match="retain split retain95"):
        import_dataset("clear", write(tmp_path / "forget05.parquet", clear_rows(["Ava Lind"])), tmp_path / "o2")


def test_clear_perturbed_and_paraphrased_columns_become_multiple_choice(tmp_path: Path) -> None:
    rows = clear_rows(["Ava Lind"])
    rows[0].update(paraphrased_caption="At a cafe, Ava Lind is smiling.", perturbed_names=["Bo Chen", "Cy Ode", "Di Fay", "Ed Gum"],
                   perturbed_captions=json.dumps(["Ava Lind frowns in a park.", "Ava Lind sleeps on a train."]))
    src = write(tmp_path / "forget10.parquet", rows)
    write(tmp_path / "retain90.parquet", clear_rows(["Bo Chen"]))  # "-" placeholders: the answer's only rival is "-"
    import_dataset("clear", src, tmp_path / "out")
    forget = load_benchmark(tmp_path / "out")["forget_privacy"].to_list()
    who = next(r for r in forget if r["task"] == "mcq" and r["field"] == "full_name")
    assert who["answer"] == "Ava Lind" and len(who["options"]) == 4 and set(who["options"]) <= {"Ava Lind", "Bo Chen", "Cy Ode", "Di Fay"}
    assert who["options"][who["correct_index"]] == "Ava Lind"
    caption = next(r for r in forget if r["task"] == "mcq" and r["field"] == "caption")
    assert caption["answer"] == "At a cafe, Ava Lind is smiling." and len(caption["options"]) == 3
    assert sorted(r["task"] for r in forget) == ["mcq", "mcq", "mcq", "open", "open"]


def medforget_rows() -> list[dict]:
    rows = []
    for inst, patient, study, section in (("I1", "p1", "s1", "findings"), ("I1", "p1", "s2", "impression"),
                                          ("I1", "p2", "s3", "findings"), ("I2", "p3", "s4", "findings")):
        rows.append({"ID": f"{patient}-{study}", "image": image(len(rows) * 50), "image_path": f"{inst}/{patient}/{study}/0.png",
                     "metadata": json.dumps([{"Question": f"What does the {section} section say?", "Answer": f"{section} of {study}"}]),
                     "hierarchy_metadata": json.dumps({"institution_id": inst, "patient_id": patient, "study_id": study,
                                                       "section_name": section, "hierarchy_level": "section"})})
    return rows


@pytest.mark.parametrize("request_, level, forgotten_rows, whole", [
    ({"institutions": ["I1"]}, "hospital", 3, ["p1", "p2"]),
    ({"patients": ["p1"]}, "patient", 2, ["p1"]),
    ({"studies": ["s2"]}, "scan", 1, []),
    ({"fields": [{"patient_id": "p1", "field": "findings"}]}, "field", 1, []),
])
def test_medforget_four_levels(tmp_path: Path, request_: dict, level: str, forgotten_rows: int, whole: list) -> None:
    src = write(tmp_path / "data" / "train.parquet", medforget_rows())
    (tmp_path / "forget.json").write_text(json.dumps(request_))
    meta = import_dataset("medforget", src.parent, tmp_path / "out", forget=tmp_path / "forget.json")
    assert (meta["forget_request"]["level"], meta["forget_request"]["rows"], meta["forget_patients"]) == (level, forgotten_rows, whole)
    assert validate(tmp_path / "out") == []


def test_missing_column_names_the_file(tmp_path: Path) -> None:
    src = write(tmp_path / "bad.parquet", [{"image": image(1), "metadata": "[]"}])
    with pytest.raises(MedforgetError, match=r"bad\.parquet: missing column\(s\) hierarchy_metadata"):
        import_dataset("medforget", src, tmp_path / "out")

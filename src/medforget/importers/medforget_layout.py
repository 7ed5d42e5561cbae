"""`medforget`: the MedForget benchmark (fengli-wu/MedForget; parquet: `image`, `image_path`, `metadata` =
JSON list of {Question, Answer}, `hierarchy_metadata` = JSON with `institution_id`, `patient_id`,
`study_id`, `section_name`).

Each question-answer pair becomes an item about the row's patient, shown with its image, with the
section as its field, so a forget request can name an institution, a patient, a study or one section
(a field) of a patient: MedForget's four levels."""

from __future__ import annotations

from pathlib import Path

from medforget.errors import MedforgetError
from medforget.importers.dataset import Imported, Record, Scan
from medforget.importers.parquet import image_png, json_cell, qa_pairs, read_rows

COLUMNS = ("image", "metadata", "hierarchy_metadata")
HIERARCHY = ("institution_id", "patient_id", "study_id")


def _read(path: Path, scans: dict[str, Scan], institutions: dict[str, str]) -> list[Record]:
    records = []
    for where, row in read_rows(path, COLUMNS):
        node = json_cell(row["hierarchy_metadata"], where, "hierarchy_metadata")
        if not isinstance(node, dict) or any(not node.get(k) for k in HIERARCHY):
            raise MedforgetError(f"{where}: hierarchy_metadata must name {', '.join(HIERARCHY)}")
        patient, study = str(node["patient_id"]), str(node["study_id"])
        institutions[patient] = str(node["institution_id"])
        sid = f"{patient}-S{sum(s.patient_id == patient for s in scans.values()) + 1:03d}"
        scans[sid] = Scan(sid, patient, image_png(row["image"], where), study_id=study)
        section = str(node.get("section_name") or "")
        records += [Record(patient, q, a, [sid], section, True, where=f"{where} pair {i}")
                    for i, (q, a) in enumerate(qa_pairs(row["metadata"], where))]
    return records


def import_medforget(src: Path, nonmembers: list[Path]) -> Imported:
    scans: dict[str, Scan] = {}
    institutions: dict[str, str] = {}
    members = _read(src, scans, institutions)
    others = [r for p in nonmembers for r in _read(p, scans, institutions)]
    return Imported("medforget", str(src), members, others, scans, institutions)

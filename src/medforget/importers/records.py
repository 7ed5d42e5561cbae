"""`records`: image-question-answer records in JSONL or CSV, one per line (docs/import.md).

Columns: `question`, `answer` (required); `patient_id` (required for a record about a person; a row
without one is a general item: trained on and kept, never forgotten, not private); `images` (paths
relative to the file, a list in JSONL, `;`-separated in CSV; `image` is read as one path), `id`,
`field`, `is_private` (default true for a person's record), `options` (a list in JSONL, `|`-separated in
CSV), `institution`, `study_id`, `modality`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from medforget.errors import MedforgetError
from medforget.importers.dataset import Imported, Record, Scan, png_from_bytes

REQUIRED = ("question", "answer")
KNOWN = ("patient_id", *REQUIRED, "images", "image", "id", "field", "is_private", "options", "institution", "study_id", "modality")
TRUE, FALSE = {"true", "1", "yes", "y"}, {"false", "0", "no", "n", ""}


def read_lines(path: Path) -> list[tuple[str, dict]]:
    """(where, object) for each record of a .jsonl or .csv file."""
    path = Path(path)
    if not path.is_file():
        raise MedforgetError(f"records file {path} does not exist")
    if path.suffix.lower() == ".csv":
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            return [(f"{path} line {i}", dict(row)) for i, row in enumerate(reader, start=2)]
    if path.suffix.lower() not in (".jsonl", ".json"):
        raise MedforgetError(f"{path}: records must be a .jsonl or .csv file")
    out = []
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise MedforgetError(f"{path} line {i}: not valid JSON ({e.msg})") from None
        if not isinstance(obj, dict):
            raise MedforgetError(f"{path} line {i}: a record must be a JSON object")
        out.append((f"{path} line {i}", obj))
    return out


def _list(value: object, sep: str, where: str, column: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(sep) if v.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise MedforgetError(f"{where}: {column} must be a list of strings")


def _flag(value: object, where: str) -> bool:
    if value is None:
        return True
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE | FALSE:
        return text in TRUE
    raise MedforgetError(f"{where}: is_private must be true or false, got {value!r}")


class RecordReader:
    """Reads record files into one `Imported`, each image file once however many records show it."""

    def __init__(self) -> None:
        self.scans: dict[str, Scan] = {}
        self.by_path: dict[Path, str] = {}
        self.institutions: dict[str, str] = {}

    def read(self, path: Path) -> list[Record]:
        return [self._record(where, obj, Path(path).parent) for where, obj in read_lines(path)]

    def _record(self, where: str, obj: dict, base: Path) -> Record:
        missing = [c for c in REQUIRED if not str(obj.get(c) or "").strip()]
        if missing:
            raise MedforgetError(f"{where}: missing {', '.join(missing)}")
        unknown = sorted(set(obj) - set(KNOWN))
        if unknown:
            raise MedforgetError(f"{where}: unknown column {unknown[0]!r} (known: {', '.join(KNOWN)})")
        patient = str(obj.get("patient_id") or "").strip()
        if obj.get("institution"):
            self.institutions[patient] = str(obj["institution"])
        paths = _list(obj.get("images"), ";", where, "images") + _list(obj.get("image"), ";", where, "image")
        scan_ids = [self._scan(base / p, patient, obj, where) for p in paths]
        return Record(
            patient_id=patient, question=str(obj["question"]), answer=str(obj["answer"]), scan_ids=scan_ids,
            field=str(obj.get("field") or ""), is_private=bool(patient) and _flag(obj.get("is_private"), where),
            options=_list(obj.get("options"), "|", where, "options"), record_id=str(obj.get("id") or ""), where=where,
        )

    def _scan(self, path: Path, patient: str, obj: dict, where: str) -> str:
        path = path.resolve()
        if path in self.by_path:  # a general item may show anyone's image; a patient's record only their own
            sid = self.by_path[path]
            owner = self.scans[sid].patient_id
            if patient and not owner:
                self.scans[sid].patient_id = patient
            elif patient and owner != patient:
                raise MedforgetError(f"{where}: image {path.name} belongs to another patient's records")
            return sid
        if not path.is_file():
            raise MedforgetError(f"{where}: image {path} not found")
        sid = f"{patient or 'item'}-S{sum(s.scan_id.startswith((patient or 'item') + '-S') for s in self.scans.values()) + 1:03d}"
        self.scans[sid] = Scan(sid, patient, png_from_bytes(path.read_bytes(), f"{where}: image {path}"),
                               study_id=str(obj.get("study_id") or ""), modality=str(obj.get("modality") or ""))
        self.by_path[path] = sid
        return sid


def import_records(src: Path, nonmembers: list[Path]) -> Imported:
    reader = RecordReader()
    members = reader.read(src)
    if not members:
        raise MedforgetError(f"{src}: no records")
    others = [r for path in nonmembers for r in reader.read(path)]
    return Imported("records", str(src), members, others, reader.scans, reader.institutions)

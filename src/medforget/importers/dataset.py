"""What every importer hands over (records, scans, a forget request) and the one writer that turns it into
a benchmark folder every command reads (docs/dataset.md).

Importers only parse their format; the splits, the ids, the forget request's resolution, the validation
and the atomic write live here once, so every source of data gives the same folder shape."""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass
from dataclasses import field as default
from pathlib import Path

from PIL import Image as PILImage

from medforget.errors import MedforgetError
from medforget.importers.request import ForgetRequest
from medforget.world.validate import validate_or_raise
from medforget.world.storage import FORMAT_VERSION, content_hash, save, to_dataset_dict, write_atomically


@dataclass
class Scan:
    """One image: a pseudonymous id, whose it is, where it sits in the clinical hierarchy, its PNG bytes."""

    scan_id: str
    patient_id: str
    png: bytes
    study_id: str = ""
    modality: str = ""
    region: str = ""


@dataclass
class Record:
    """One question about one patient (or about nobody, for general items), with the scans it shows."""

    patient_id: str
    question: str
    answer: str
    scan_ids: list[str] = default(default_factory=list)
    field: str = ""
    is_private: bool = True
    options: list[str] = default(default_factory=list)
    record_id: str = ""
    where: str = ""  # "file line N", for one-line errors


@dataclass
class Imported:
    """A parsed source: members (trained on), non-members (never trained on), their scans and hierarchy."""

    format: str
    source: str
    members: list[Record]
    nonmembers: list[Record] = default(default_factory=list)
    scans: dict[str, Scan] = default(default_factory=dict)
    institutions: dict[str, str] = default(default_factory=dict)  # patient_id -> institution
    request: ForgetRequest | None = None  # the source's own forget split, if it has one
    #: real id -> pseudonym, per kind (patients, studies, institutions), when the importer replaced real ids
    aliases: dict[str, dict[str, str]] = default(default_factory=dict)


def to_png(image: PILImage.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def png_from_bytes(data: bytes, where: str) -> bytes:
    """Any image file's bytes as PNG bytes; an unreadable one is a one-line error naming it."""
    try:
        image = PILImage.open(io.BytesIO(data))
        image.load()
    except Exception as e:  # PIL raises many types for a broken file
        raise MedforgetError(f"{where}: not a readable image ({type(e).__name__})") from None
    return data if image.format == "PNG" else to_png(image)


def _row(record: Record, split: str, row_id: str) -> dict:
    task = "mcq" if record.options else "cloze" if "___" in record.question else "open"
    condition = "image" if record.scan_ids else "name" if record.patient_id else "none"
    return {
        "id": row_id, "patient_id": record.patient_id, "split": split, "scenario": "privacy" if record.patient_id else "general",
        "task": task, "condition": condition, "question": record.question, "answer": record.answer,
        "options": list(record.options), "correct_index": record.options.index(record.answer) if record.options else -1,
        "field": record.field, "is_private": record.is_private, "is_incorrect": False, "true_answer": record.answer,
        "template_id": f"import.{task}.{condition}", "scan_ids": list(record.scan_ids), "fact_id": "", "neighbour_of": [],
    }


def _check_record(record: Record) -> None:
    if not record.question.strip() or not record.answer.strip():
        raise MedforgetError(f"{record.where}: empty question or answer")
    if record.options and record.answer not in record.options:
        raise MedforgetError(f"{record.where}: the answer is not one of the options")
    if record.options and not 2 <= len(record.options) <= 4:
        raise MedforgetError(f"{record.where}: {len(record.options)} options; a multiple-choice item has 2 to 4")
    if record.options and len(set(record.options)) != len(record.options):
        raise MedforgetError(f"{record.where}: the options repeat a value")


def _rows(records: list[Record], split: str, scans: dict[str, Scan]) -> list[dict]:
    rows, seen, counter = [], set(), Counter()
    for record in records:
        _check_record(record)
        for sid in record.scan_ids:
            if sid not in scans:
                raise MedforgetError(f"{record.where}: image {sid!r} was not imported")
        counter[record.patient_id] += 1
        row_id = record.record_id or f"{record.patient_id or 'item'}-{counter[record.patient_id]:04d}"
        if row_id in seen:
            raise MedforgetError(f"{record.where}: duplicate record id {row_id!r}")
        seen.add(row_id)
        rows.append(_row(record, split, row_id))
    return rows


def _scan_row(scan: Scan, group: str) -> dict:
    return {
        "scan_id": scan.scan_id, "patient_id": scan.patient_id, "group": group, "role": "train",
        "modality": scan.modality, "region": scan.region, "finding": "", "laterality": "", "location": "",
        "size_mm": 0.0, "quality": "", "landmarks": [], "marker_shape": "", "marker_slot": -1,
        "image": {"bytes": scan.png, "path": None},
    }


def build_splits(data: Imported, request: ForgetRequest | None) -> tuple[dict[str, list[dict]], dict]:
    """The rows of each split and what the forget request resolved to (its level, its rows, its siblings)."""
    members, nonmembers = {r.patient_id for r in data.members}, {r.patient_id for r in data.nonmembers}
    both = sorted((members & nonmembers) - {""})
    if both:
        raise MedforgetError(f"{len(both)} patient(s) are both members and non-members (first: {both[0]}); a non-member was never trained on")
    studies = {s.scan_id: s.study_id for s in data.scans.values() if s.study_id}
    train = _rows(data.members, "train", data.scans)
    request = request or data.request or ForgetRequest()
    resolved = request.resolve(train, studies, data.institutions)
    forget_ids = set(resolved["row_ids"])
    forget = [dict(r, split="forget_privacy") for r in train if r["id"] in forget_ids]
    retain = [dict(r, split="retain") for r in train if r["id"] not in forget_ids]
    holdout_rows = _rows(data.nonmembers, "holdout", data.scans)
    return {"train": train, "retain": retain, "forget_privacy": forget, "holdout": holdout_rows}, resolved


def write_imported(data: Imported, out: Path, request: ForgetRequest | None = None, overwrite: bool = False) -> dict:
    """Write `data` as a benchmark folder at `out` (atomically) and return its metadata."""
    splits, resolved = build_splits(data, request)
    nonmember_patients = {r.patient_id for r in data.nonmembers}
    used = {sid for rows in splits.values() for r in rows for sid in r["scan_ids"]}
    scans = [_scan_row(s, "holdout" if s.patient_id in nonmember_patients else "finetune")
             for sid, s in sorted(data.scans.items()) if sid in used]
    dd = to_dataset_dict(splits, scans)
    patients = Counter(
        "holdout" if p in nonmember_patients else "finetune" for p in {r["patient_id"] for rows in splits.values() for r in rows} if p
    )
    meta = {
        "version": FORMAT_VERSION, "seed": 0, "preset": "imported",
        "source": {"format": data.format, "path": Path(data.source).name},
        "counts": {name: len(dd[name]) for name in dd}, "patients": dict(patients),
        "forget_patients": resolved["patients"],
        "forget_request": {k: v for k, v in resolved.items() if k != "row_ids"},
        "hierarchy": {"institutions": data.institutions, "studies": {s: st for s, st in
                      ((s.scan_id, s.study_id) for s in data.scans.values()) if st and s in used}},
        "content_hash": content_hash(dd),
    }
    def fill(tmp: Path) -> None:
        save(dd, meta, data_card(meta), tmp)
        validate_or_raise(tmp)

    write_atomically(out, fill, overwrite)
    return meta


def data_card(meta: dict) -> str:
    rows = "\n".join(f"| `{name}` | {count} |" for name, count in meta["counts"].items())
    request = meta["forget_request"]
    return f"""# medforget dataset imported from {meta['source']['format']} ({meta['source']['path']})

Written by `medforget import`; the schema is docs/dataset.md. Forget request: level `{request['level']}`,
{request['rows']} row(s) of {len(request['affected_patients'])} patient(s).

| split | rows |
|---|---|
{rows}
"""

"""`clear`: CLEAR (therem/CLEAR) forget and retain splits (parquet: `image`, `caption`, `name`, `question`,
`answer`, `options`; the perturbed and paraphrased columns are not read).

SRC is a forget split, `forgetNN` (a parquet file or a folder of shards); its retain split `retain{100-NN}`
beside it is read with it, and the forget split's people are the forget request. Each row becomes up to
three items about the person `name`: who is in the image (the name, private), the caption of the image,
and the row's own question (multiple choice when `options` holds the answer)."""

from __future__ import annotations

import re
from pathlib import Path

from medforget.errors import MedforgetError
from medforget.importers.dataset import Imported, Record, Scan
from medforget.importers.parquet import image_png, json_cell, read_rows
from medforget.importers.request import ForgetRequest

COLUMNS = ("image", "caption", "name", "question", "answer")
WHO = "What is the name of the person in this image?"
CAPTION = "Describe this image."


def retain_split(src: Path) -> Path:
    match = re.fullmatch(r"forget(\d+)", src.stem if src.is_file() else src.name)
    if not match:
        raise MedforgetError(f"{src}: point at a CLEAR forget split (forget01, forget05, forget10: a parquet file or folder)")
    name = f"retain{100 - int(match.group(1)):02d}"
    sibling = next((p for p in (src.with_name(name + ".parquet"), src.with_name(name)) if p.exists()), None)
    if sibling is None:
        raise MedforgetError(f"{src}: its retain split {name} (.parquet or folder) is not beside it")
    return sibling


def _options(cell: object, answer: str, where: str) -> list[str]:
    options = json_cell(cell, where, "options") if cell is not None else []
    if isinstance(options, dict):
        options = list(options.values())
    options = [str(o) for o in options or []]
    return options if 2 <= len(options) <= 4 and answer in options and len(set(options)) == len(options) else []


def _read(path: Path, scans: dict[str, Scan]) -> list[Record]:
    records = []
    for where, row in read_rows(path, COLUMNS):
        person = str(row["name"] or "").strip()
        if not person:
            raise MedforgetError(f"{where}: empty name")
        sid = ""
        if row["image"] is not None:
            sid = f"{person}-S{sum(s.patient_id == person for s in scans.values()) + 1:03d}"
            scans[sid] = Scan(sid, person, image_png(row["image"], where))
        shown = [sid] if sid else []
        if shown:
            records.append(Record(person, WHO, person, shown, "full_name", True, where=where))
        if shown and str(row["caption"] or "").strip():
            records.append(Record(person, CAPTION, str(row["caption"]), shown, "caption", True, where=where))
        if str(row["question"] or "").strip() and str(row["answer"] or "").strip():
            answer = str(row["answer"])
            records.append(Record(person, str(row["question"]), answer, shown, "", True,
                                  options=_options(row.get("options"), answer, where), where=where))
    return records


def import_clear(src: Path, nonmembers: list[Path]) -> Imported:
    scans: dict[str, Scan] = {}
    forget = _read(src, scans)
    retain = _read(retain_split(src), scans)
    request = ForgetRequest(patients=sorted({r.patient_id for r in forget}), where=str(src))
    return Imported("clear", str(src), forget + retain, [r for p in nonmembers for r in _read(p, scans)], scans, request=request)

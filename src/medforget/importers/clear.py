"""`clear`: CLEAR (therem/CLEAR) forget and retain splits (parquet: `image`, `caption`, `name`, `question`,
`answer`, `options`, and where present `perturbed_names`, `paraphrased_caption`, `perturbed_captions`).

SRC is a forget split, `forgetNN` (a parquet file or a folder of shards); its retain split `retain{100-NN}`
beside it is read with it, and the forget split's people are the forget request. Each row becomes up to
five items about the person `name`: who is in the image (the name, private), the caption of the image,
the row's own question (multiple choice when `options` holds the answer), and, from the perturbed
columns, two multiple-choice items as CLEAR (after TOFU) scores them: the name among the perturbed names,
and the paraphrased caption among the perturbed captions. Their option likelihoods give the truth ratios
that forget quality compares with an oracle's."""

from __future__ import annotations

import hashlib
import random
import re
from pathlib import Path

from medforget.errors import MedforgetError
from medforget.importers.dataset import Imported, Record, Scan
from medforget.importers.parquet import image_png, json_cell, read_rows
from medforget.importers.request import ForgetRequest

COLUMNS = ("image", "caption", "name", "question", "answer")
WHO = "What is the name of the person in this image?"
CAPTION = "Describe this image."
WHO_CHOICE = "Which of these is the name of the person in this image?"
CAPTION_CHOICE = "Which of these describes this image?"
MAX_WRONG = 3  # a multiple-choice item has at most 4 options


def _strings(cell: object, where: str, column: str) -> list[str]:
    """A list cell (or a JSON list, or one string) as its distinct non-empty strings."""
    value = json_cell(cell, where, column) if isinstance(cell, str) and cell.lstrip().startswith("[") else cell
    values = [value] if isinstance(value, str) else list(value or [])
    return [v for v in dict.fromkeys(str(x).strip() for x in values) if v]


def choice(person: str, question: str, answer: str, wrong: list[str], shown: list[str], field: str, where: str) -> Record | None:
    """The answer among up to three wrong ones, in an order fixed by the row (not always first); None without
    a wrong one."""
    wrong = [w for w in wrong if w != answer][:MAX_WRONG]
    if not answer or not wrong:
        return None
    options = [answer, *wrong]
    random.Random(hashlib.sha256(f"{where}|{field}".encode()).digest()).shuffle(options)
    return Record(person, question, answer, shown, field, True, options=options, where=where)


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
        if shown:
            paraphrase = str(row.get("paraphrased_caption") or "").strip()
            extra = (choice(person, WHO_CHOICE, person, _strings(row.get("perturbed_names"), where, "perturbed_names"),
                            shown, "full_name", where),
                     choice(person, CAPTION_CHOICE, paraphrase, _strings(row.get("perturbed_captions"), where, "perturbed_captions"),
                            shown, "caption", where))
            records += [r for r in extra if r is not None]
    return records


def import_clear(src: Path, nonmembers: list[Path]) -> Imported:
    scans: dict[str, Scan] = {}
    forget = _read(src, scans)
    retain = _read(retain_split(src), scans)
    request = ForgetRequest(patients=sorted({r.patient_id for r in forget}), where=str(src))
    return Imported("clear", str(src), forget + retain, [r for p in nonmembers for r in _read(p, scans)], scans, request=request)

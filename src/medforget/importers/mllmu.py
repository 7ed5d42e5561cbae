"""`mllmu`: MLLMU-Bench's training split (parquet: `ID`, `image`, `metadata` = JSON list of {Question, Answer}).

Each profile (ID) is one person; every question-answer pair of `metadata` becomes an item shown with the
person's image. The evaluation sets (Forget, Test, Retain) hold `Classification_Task` and no `metadata`:
they are refused with a note naming the split to import (users hit this, MLLMU-Bench issue #3). Name the
forget set with `--forget` (its IDs one a line, or the Forget set's parquet, whose `ID` column is read)."""

from __future__ import annotations

from pathlib import Path

from medforget.errors import MedforgetError
from medforget.importers.dataset import Imported, Record, Scan
from medforget.importers.parquet import image_png, parquet_files, qa_pairs, read_rows

COLUMNS = ("ID", "image", "metadata")
EVALUATION_COLUMNS = ("Classification_Task", "Mask_Task", "Generation_Task")


def _read(path: Path, scans: dict[str, Scan]) -> list[Record]:
    import pyarrow.parquet as pq

    for file in parquet_files(path):
        names = pq.read_schema(file).names
        if "metadata" not in names and any(c in names for c in EVALUATION_COLUMNS):
            raise MedforgetError(f"{file} is an MLLMU-Bench evaluation set ({', '.join(c for c in EVALUATION_COLUMNS if c in names)}, "
                                 "no metadata column): import the training split (baseline_train_split), whose metadata holds the "
                                 "question-answer pairs, and name the forget people with --forget")
    records = []
    for where, row in read_rows(path, COLUMNS):
        person = str(row["ID"])
        sid = f"{person}-S{sum(s.patient_id == person for s in scans.values()) + 1:03d}"
        scans[sid] = Scan(sid, person, image_png(row["image"], where))
        records += [Record(person, q, a, [sid], "", True, where=f"{where} pair {i}") for i, (q, a) in enumerate(qa_pairs(row["metadata"], where))]
    return records


def import_mllmu(src: Path, nonmembers: list[Path]) -> Imported:
    scans: dict[str, Scan] = {}
    members = _read(src, scans)
    return Imported("mllmu", str(src), members, [r for p in nonmembers for r in _read(p, scans)], scans)

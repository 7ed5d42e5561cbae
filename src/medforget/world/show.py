"""`show`: sample rows (private values redacted unless asked) and a contact sheet of their scans."""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw

from medforget.world.storage import Benchmark


def private_values(bench: Benchmark, split: str) -> dict[str, dict[str, str]]:
    """patient_id -> {private value: field}, from the split's own private items."""
    out: dict[str, dict[str, str]] = {}
    ds = bench[split]
    for pid, field, answer, private in zip(ds["patient_id"], ds["field"], ds["answer"], ds["is_private"]):
        if private:
            out.setdefault(pid, {})[answer] = field
    return out


def redact_row(row: dict, values: dict[str, str]) -> dict:
    """Replace the patient's private values wherever they occur in the row's text."""

    def clean(text: str) -> str:
        for value in sorted(values, key=len, reverse=True):
            if len(value) > 2:
                text = text.replace(value, f"[REDACTED:{values[value]}]")
        return text

    options = [clean(o) for o in row["options"]]
    if row["is_private"]:  # distractors are other patients' private values: hide them all
        values = {**values, row["answer"]: row["field"]}
        options = [f"[REDACTED:{row['field']}]" + (" (answer)" if i == row["correct_index"] else "") for i in range(len(options))]
    return dict(
        row, question=clean(row["question"]), answer=clean(row["answer"]), true_answer=clean(row["true_answer"]), options=options,
    )


def sample_rows(bench: Benchmark, split: str, n: int, seed: int = 0, reveal: bool = False) -> list[dict]:
    ds = bench[split]
    picks = sorted(random.Random(seed).sample(range(len(ds)), min(n, len(ds))))
    rows = [ds[i] for i in picks]
    if reveal:
        return rows
    values = private_values(bench, split)
    return [redact_row(r, values.get(r["patient_id"], {})) for r in rows]


def contact_sheet(bench: Benchmark, rows: list[dict], out: Path, tile: int = 128, columns: int = 6) -> int:
    """Write a grid of the rows' scans (or of the first scans when the rows show none); returns the count."""
    scan_ids = list(dict.fromkeys(s for r in rows for s in r["scan_ids"]))
    if not scan_ids:
        scan_ids = bench["scans"]["scan_id"][: columns * 2]
    scans = bench["scans"]
    meta = {sid: scans[bench.scan_index[sid]] for sid in scan_ids}
    rows_n = (len(scan_ids) + columns - 1) // columns
    label_h = 26
    sheet = Image.new("L", (columns * tile, rows_n * (tile + label_h)), 0)
    draw = ImageDraw.Draw(sheet)
    for k, sid in enumerate(scan_ids):
        x, y = (k % columns) * tile, (k // columns) * (tile + label_h)
        sheet.paste(bench.image(sid).resize((tile, tile), Image.Resampling.NEAREST), (x, y))
        m = meta[sid]
        draw.text((x + 2, y + tile + 1), f"{sid} {m['quality']}", fill=255)
        draw.text((x + 2, y + tile + 13), f"{m['modality']} {m['region']} {m['finding']}", fill=200)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return len(scan_ids)

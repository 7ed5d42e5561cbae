"""A generated benchmark written out in the `records` format, so the import path can be checked against the
benchmark's own evaluation: the same patients, questions, images and forget request, re-imported.

Only patient record items (scenario `privacy`) are written: the `records` format holds records about
people; knowledge and image-understanding items have no patient."""

from __future__ import annotations

import json
from pathlib import Path

from datasets import Image

from medforget.world.storage import Benchmark, load_benchmark, write_atomically

MEMBERS, NONMEMBERS, FORGET = "records.jsonl", "nonmembers.jsonl", "forget.txt"


def _lines(bench: Benchmark, split: str, images: set[str]) -> str:
    hierarchy = bench.meta.get("hierarchy") or {}
    sites, studies = hierarchy.get("institutions", {}), hierarchy.get("studies", {})
    out = []
    for r in bench[split]:
        if r["scenario"] != "privacy" or not r["patient_id"]:
            continue
        images.update(r["scan_ids"])
        record = {"id": r["id"], "patient_id": r["patient_id"], "question": r["question"], "answer": r["answer"],
                  "images": [f"images/{s}.png" for s in r["scan_ids"]], "field": r["field"], "is_private": r["is_private"]}
        if r["patient_id"] in sites:  # the hierarchy, so the request's siblings (the hospital's other patients) come back
            record["institution"] = sites[r["patient_id"]]
        study = next((studies[s] for s in r["scan_ids"] if s in studies), "")
        if study:
            record["study_id"] = study
        if r["options"]:
            record["options"] = r["options"]
        out.append(json.dumps(record) + "\n")
    return "".join(out)


def export_records(bench_dir: Path, out: Path, overwrite: bool = False) -> dict[str, int]:
    """records.jsonl (train), nonmembers.jsonl (holdout), forget.txt and images/ in `out`; returns line counts."""
    bench = load_benchmark(bench_dir)
    used: set[str] = set()
    members, others = _lines(bench, "train", used), _lines(bench, "holdout", used)
    raw = bench["scans"].cast_column("image", Image(decode=False))

    def fill(tmp: Path) -> None:
        (tmp / "images").mkdir()
        for row in raw:
            if row["scan_id"] in used:
                (tmp / "images" / f"{row['scan_id']}.png").write_bytes(row["image"]["bytes"])
        (tmp / MEMBERS).write_text(members)
        (tmp / NONMEMBERS).write_text(others)
        (tmp / FORGET).write_text("".join(p + "\n" for p in bench.meta["forget_patients"]))

    write_atomically(Path(out), fill, overwrite)
    return {"records": members.count("\n"), "nonmembers": others.count("\n"), "images": len(used)}

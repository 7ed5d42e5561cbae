"""A generated benchmark written out in the `records` format, so the import path can be checked against the
benchmark's own evaluation: the same patients, questions, images and forget request, re-imported.

Patient record items (scenario `privacy`) are written with their patient; the other items the unlearning
methods keep training on (textbook knowledge, image understanding: the rest of `retain`) are written
without one, as general items, so the imported `retain` is the benchmark's, row for row. The members' file
lists `retain` and then `forget_privacy`, each in the benchmark's order, so the imported splits keep it (an
unlearning run draws its batches by position). The corrupted facts (`forget_incorrect`) are not written:
they belong to the other scenario, and a privacy request's retain set leaves them out."""

from __future__ import annotations

import json
from pathlib import Path

from datasets import Image

from medforget.world.storage import Benchmark, load_benchmark, write_atomically

MEMBERS, NONMEMBERS, FORGET = "records.jsonl", "nonmembers.jsonl", "forget.txt"


def _record(bench: Benchmark, r: dict) -> dict:
    hierarchy = bench.meta.get("hierarchy") or {}
    sites, studies = hierarchy.get("institutions", {}), hierarchy.get("studies", {})
    person = r["patient_id"] if r["scenario"] == "privacy" else ""
    record = {"id": r["id"], "patient_id": person, "question": r["question"], "answer": r["answer"],
              "images": [f"images/{s}.png" for s in r["scan_ids"]], "field": r["field"], "is_private": r["is_private"] and bool(person)}
    if person in sites:  # the hierarchy, so the request's siblings (the hospital's other patients) come back
        record["institution"] = sites[person]
    study = next((studies[s] for s in r["scan_ids"] if s in studies), "")
    if study and person:
        record["study_id"] = study
    if r["options"]:
        record["options"] = r["options"]
    return record


def _lines(bench: Benchmark, splits: tuple[str, ...], images: set[str], privacy_only: bool) -> str:
    out = []
    for split in splits:
        for r in bench[split]:
            if privacy_only and (r["scenario"] != "privacy" or not r["patient_id"]):
                continue
            images.update(r["scan_ids"])
            out.append(json.dumps(_record(bench, r)) + "\n")
    return "".join(out)


def export_records(bench_dir: Path, out: Path, overwrite: bool = False) -> dict[str, int]:
    """records.jsonl (retain, then forget_privacy), nonmembers.jsonl (holdout), forget.txt and images/ in `out`;
    returns line counts."""
    bench = load_benchmark(bench_dir)
    used: set[str] = set()
    members = _lines(bench, ("retain", "forget_privacy"), used, privacy_only=False)
    others = _lines(bench, ("holdout",), used, privacy_only=True)
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

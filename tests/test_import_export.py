"""A generated benchmark exported to `records` and re-imported keeps its patients, items and forget request."""

from __future__ import annotations

from pathlib import Path

from medforget.importers import import_dataset
from medforget.importers.export import FORGET, MEMBERS, NONMEMBERS, export_records
from medforget.world.storage import load_benchmark
from medforget.world.validate import validate


def test_round_trip_of_the_smoke_benchmark(smoke_bench: Path, tmp_path: Path) -> None:
    counts = export_records(smoke_bench, tmp_path / "records")
    folder = tmp_path / "records"
    meta = import_dataset("records", folder / MEMBERS, tmp_path / "imported", forget=folder / FORGET, nonmembers=[folder / NONMEMBERS])
    assert validate(tmp_path / "imported") == []
    original, imported = load_benchmark(smoke_bench), load_benchmark(tmp_path / "imported")
    assert meta["forget_patients"] == original.meta["forget_patients"]
    # the hierarchy comes back with the records: the same siblings (the forgotten patients' hospitals' other patients)
    assert meta["forget_request"]["sibling_patients"] == original.meta["forget_request"]["sibling_patients"]
    privacy = [r for r in original["forget_privacy"] if r["scenario"] == "privacy"]
    # row for row and in order: an unlearning run draws its forget and retain batches by position
    assert imported["forget_privacy"]["id"] == original["forget_privacy"]["id"] == [r["id"] for r in privacy]
    assert imported["retain"]["id"] == original["retain"]["id"]
    knowledge = [r for r in imported["retain"] if not r["patient_id"]]  # the textbook and image items: general items
    assert knowledge and not any(r["is_private"] for r in knowledge) and {r["scenario"] for r in knowledge} == {"general"}
    by_id = {r["id"]: r for r in imported["forget_privacy"]}
    for r in privacy:
        twin = by_id[r["id"]]
        assert (twin["question"], twin["answer"], twin["task"], twin["condition"], twin["is_private"]) == (
            r["question"], r["answer"], r["task"], r["condition"], r["is_private"])
        assert [imported.image(s).tobytes() for s in twin["scan_ids"]] == [original.image(s).tobytes() for s in r["scan_ids"]]
    assert len(imported["holdout"]) == counts["nonmembers"] and len(imported["train"]) == counts["records"]
    assert counts["records"] == len(original["retain"]) + len(original["forget_privacy"])

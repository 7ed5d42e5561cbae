"""`validate`: schema, images, leakage and answerability checks on a benchmark folder, each problem as one line."""

from __future__ import annotations

import io
from collections import defaultdict
from pathlib import Path

from datasets import Image
from PIL import Image as PILImage

from medforget.errors import MedforgetError
from medforget.evaluate.metrics.leak import name_tokens
from medforget.world.questions import TASKS
from medforget.world.splits import NOT_ASKED_BY_NAME, SPLITS
from medforget.world.storage import REQUIRED_SPLITS, ROW_FEATURES, SCAN_FEATURES, Benchmark, content_hash, is_imported

SCENARIOS = {"privacy", "incorrect", "general"}
CONDITIONS = {"image", "name", "none"}
MAX_PROBLEMS_PER_CHECK = 5


class Problems(list):
    """Problem lines, capped per check so one systematic fault does not flood the output."""

    def __init__(self) -> None:
        super().__init__()
        self._per_check: dict[str, int] = defaultdict(int)

    def add(self, check: str, message: str) -> None:
        self._per_check[check] += 1
        n = self._per_check[check]
        if n <= MAX_PROBLEMS_PER_CHECK:
            self.append(f"{check}: {message}")
        elif n == MAX_PROBLEMS_PER_CHECK + 1:
            self.append(f"{check}: more problems of this kind not shown")


def validate(folder: Path | str) -> list[str]:
    """Return every problem found (empty when the benchmark is sound). Unreadable folders raise MedforgetError."""
    bench = Benchmark(folder)
    problems = Problems()
    required = REQUIRED_SPLITS if is_imported(bench.meta) else SPLITS
    missing = [s for s in (*required, "scans") if s not in bench.splits]
    for s in missing:
        problems.add("schema", f"split {s!r} is missing")
    if missing:
        return problems
    present = [s for s in SPLITS if s in bench.splits]
    _check_schema(bench, present, problems)
    if problems:
        return problems
    scans = _check_scans(bench, problems)
    rows = {name: bench.splits[name].to_list() for name in present}
    for name, split_rows in rows.items():
        _check_rows(name, split_rows, scans, problems)
    _check_leakage(bench, rows, scans, problems)
    _check_answerable(rows, problems)
    if not problems and content_hash(bench.splits) != bench.meta.get("content_hash"):
        problems.add("hash", "content hash differs from benchmark.json: the data was changed after generation")
    return problems


def _check_schema(bench: Benchmark, present: list[str], problems: Problems) -> None:
    for name in present:
        if bench.splits[name].features != ROW_FEATURES:
            problems.add("schema", f"split {name!r} has columns {sorted(bench.splits[name].features)}, expected {sorted(ROW_FEATURES)} with the documented types")
    if bench.splits["scans"].features != SCAN_FEATURES:
        problems.add("schema", "split 'scans' does not have the documented columns and types")
    for name, count in bench.meta.get("counts", {}).items():
        if name in bench.splits and len(bench.splits[name]) != count:
            problems.add("schema", f"split {name!r} has {len(bench.splits[name])} rows, benchmark.json says {count}")


def _check_scans(bench: Benchmark, problems: Problems) -> dict[str, dict]:
    size = bench.meta.get("config", {}).get("image_size")
    raw = bench.splits["scans"].cast_column("image", Image(decode=False))
    scans: dict[str, dict] = {}
    for row in raw:
        sid = row["scan_id"]
        if sid in scans:
            problems.add("images", f"scan id {sid} occurs twice")
        scans[sid] = row
        data = (row["image"] or {}).get("bytes")
        try:
            img = PILImage.open(io.BytesIO(data or b""))
            img.load()
        except Exception:
            problems.add("images", f"scan {sid}: image is missing or unreadable")
            continue
        if size and img.size != (size, size):
            problems.add("images", f"scan {sid}: image is {img.size[0]}x{img.size[1]}, expected {size}x{size}")
    return scans


def _check_rows(name: str, rows: list[dict], scans: dict[str, dict], problems: Problems) -> None:
    seen: set[str] = set()
    for r in rows:
        where = f"{name} row {r['id']!r}"
        if r["id"] in seen:
            problems.add("rows", f"{where}: duplicate id")
        seen.add(r["id"])
        if r["split"] != name:
            problems.add("rows", f"{where}: split column says {r['split']!r}")
        if r["task"] not in TASKS or r["condition"] not in CONDITIONS or r["scenario"] not in SCENARIOS:
            problems.add("rows", f"{where}: unknown task/condition/scenario {r['task']!r}/{r['condition']!r}/{r['scenario']!r}")
        if not r["question"].strip() or not r["answer"].strip():
            problems.add("rows", f"{where}: empty question or answer")
        if r["task"] == "mcq":
            n, ci = len(r["options"]), r["correct_index"]
            if not 2 <= n <= 4 or not 0 <= ci < n or r["options"][ci] != r["answer"] or len(set(r["options"])) != n:
                problems.add("rows", f"{where}: options and correct_index do not agree with the answer")
        elif r["options"] or r["correct_index"] != -1:
            problems.add("rows", f"{where}: a {r['task']} item must have no options and correct_index -1")
        if r["task"] == "cloze" and "___" not in r["question"]:
            problems.add("rows", f"{where}: cloze question has no blank '___'")
        if r["is_incorrect"] != (r["answer"] != r["true_answer"]):
            problems.add("rows", f"{where}: is_incorrect disagrees with answer/true_answer")
        for sid in r["scan_ids"]:
            if sid not in scans:
                problems.add("images", f"{where}: points to scan {sid!r}, which is not in 'scans'")


def _check_leakage(bench: Benchmark, rows: dict[str, list[dict]], scans: dict[str, dict], problems: Problems) -> None:
    ids = {name: {r["id"] for r in rows.get(name, [])} for name in SPLITS}
    parts = ids["retain"] | ids["forget_privacy"] | ids["forget_incorrect"]
    if ids["train"] != parts:
        problems.add("leakage", f"train is not exactly retain + forget_privacy + forget_incorrect ({len(ids['train'] ^ parts)} ids differ)")
    for forget in ("forget_privacy", "forget_incorrect"):
        for rid in sorted(ids[forget] & ids["retain"]):
            problems.add("leakage", f"forget item {rid!r} is also in retain")
    forgotten = set(bench.meta.get("forget_patients", []))
    for r in rows["retain"]:
        if r["patient_id"] in forgotten:
            problems.add("leakage", f"retain row {r['id']!r} is about forgotten patient {r['patient_id']}")
    group_of = {s["patient_id"]: s["group"] for s in scans.values()}
    imported = is_imported(bench.meta)
    if imported:  # text-only patients have no scan to tell their group: members and non-members must not meet
        members = {r["patient_id"] for r in rows["train"]} - {""}
        for r in rows.get("holdout", []):
            if r["patient_id"] in members:
                problems.add("leakage", f"holdout row {r['id']!r} is about a trained patient; non-members must never be trained on")
    expected_group = {"train": "finetune", "test_retain": "finetune", "test_forget": "finetune", "holdout": "holdout", "general": "general", "pretrain": "pretrain"}
    for name, group in expected_group.items():
        for r in rows.get(name, []):
            if name == "train" and _replayed(r, group_of):
                continue
            if imported and r["patient_id"] not in group_of:
                continue
            if r["patient_id"] and group_of.get(r["patient_id"]) != group:
                problems.add("leakage", f"{name} row {r['id']!r} is about a {group_of.get(r['patient_id'], 'unknown')} patient, expected {group}")
    test_templates = {r["template_id"] for name in ("test_retain", "test_forget") for r in rows.get(name, [])}
    for r in rows["train"]:
        if r["template_id"] in test_templates:
            problems.add("leakage", f"train row {r['id']!r} uses test paraphrase {r['template_id']!r}")
        role = "pretrain" if _replayed(r, group_of) else "train"
        for sid in r["scan_ids"]:
            if sid in scans and scans[sid]["role"] != role:
                problems.add("leakage", f"train row {r['id']!r} shows {scans[sid]['role']} scan {sid}")
    for name in ("test_retain", "test_forget"):
        for r in rows.get(name, []):
            for sid in r["scan_ids"]:
                if sid in scans and scans[sid]["role"] != "test":
                    problems.add("leakage", f"{name} row {r['id']!r} shows {scans[sid]['role']} scan {sid}, expected a held-out test scan")


def _check_answerable(rows: dict[str, list[dict]], problems: Problems) -> None:
    """No question that names a patient may hold its answer: an answer sharing a token of the patient's name
    (from the patient's full_name items) with the question is read off, not recalled. Problems name the row,
    never the name."""
    names = {r["patient_id"]: name_tokens(r["answer"]) for split in rows.values() for r in split if r["field"] == "full_name"}
    for split_name, split_rows in rows.items():
        for r in split_rows:
            if r["condition"] != "name":
                continue
            where = f"{split_name} row {r['id']!r}"
            if r["field"] in NOT_ASKED_BY_NAME:
                problems.add("answerable", f"{where}: asks the {r['field']} of a patient it names")
            elif names.get(r["patient_id"], set()) & name_tokens(r["question"]) & name_tokens(r["answer"]):
                problems.add("answerable", f"{where}: the answer shares a name token with its question")


def _replayed(row: dict, group_of: dict[str, str]) -> bool:
    """An image item replayed from pretraining in the fine-tuning set (about a pretrain patient's scan)."""
    return row["scenario"] == "general" and group_of.get(row["patient_id"]) == "pretrain"


def validate_or_raise(folder: Path | str) -> None:
    problems = validate(folder)
    if problems:
        raise MedforgetError(f"benchmark {folder} is invalid: {problems[0]} ({len(problems)} problems; run `medforget validate`)")

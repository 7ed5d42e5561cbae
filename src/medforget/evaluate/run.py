"""`evaluate`: one model on chosen splits -> metrics JSON + per-item Parquet."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import torch

from medforget.errors import MedforgetError
from medforget.evaluate.engine import ImageCache
from medforget.evaluate.items import evaluate_rows
from medforget.evaluate.metrics.wellformed import MEMBERSHIP_FIELDS
from medforget.evaluate.summary import membership, split_metrics
from medforget.models.loading import load_model
from medforget.world.splits import SPLITS
from medforget.world.storage import Benchmark, load_benchmark

DEFAULT_SPLITS = ("forget_privacy", "forget_incorrect", "retain", "test_forget", "test_retain", "general", "holdout")
Progress = Callable[[str, int, int], None]  # (split, done, total)


def known_values(bench: Benchmark) -> dict[str, set[str]]:
    """Every answer a closed-set field takes in this world (for well-formedness): the record fields without a
    shape of their own, and each knowledge relation (its true and its corrupted answers alike)."""
    out: dict[str, set[str]] = {f: set() for f in MEMBERSHIP_FIELDS}
    for split in (s for s in ("train", "holdout", "test_retain", "test_forget") if s in bench.splits):
        ds = bench[split]
        for field, scenario, answer, truth in zip(ds["field"], ds["scenario"], ds["answer"], ds["true_answer"]):
            if field in MEMBERSHIP_FIELDS:
                out[field].add(answer)
            elif scenario == "incorrect":
                out.setdefault(field, set()).update((answer, truth))
    return out


def always_scored(row: dict) -> bool:
    """Rows every evaluation scores in full, whatever its sample size: corrupted facts and their neighbours
    (the incorrect scenario's figures rest on them, and a hash sample of `retain` would keep a few)."""
    return row["is_incorrect"] or bool(row.get("neighbour_of"))


def check_splits(splits: Sequence[str]) -> list[str]:
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise MedforgetError(f"unknown split(s) {', '.join(unknown)}; choose from: {', '.join(SPLITS)}")
    return list(dict.fromkeys(splits))


def evaluate_model(
    model_dir: str | Path, bench_dir: Path, splits: Sequence[str] = DEFAULT_SPLITS, *, batch_size: int = 64,
    max_new_tokens: int = 24, min_k: float = 0.2, limit: int | None = None, progress: Progress | None = None,
    full: Sequence[str] = (),
) -> tuple[dict, list[dict]]:
    """Metrics and per-item records of one model. `limit` evaluates N rows of each split (see `sample_rows`)
    except the `full` ones."""
    bench = load_benchmark(bench_dir)
    wanted = check_splits(splits)
    splits = [s for s in wanted if s in bench.splits]  # an imported folder lacks the synthetic-only splits
    model, processor = load_model(model_dir)
    model.eval()
    images = ImageCache(bench)
    known = known_values(bench)
    began = time.perf_counter()
    records: dict[str, list[dict]] = {}
    for split in splits:
        rows = sample_rows(bench[split].to_list(), None if split in full else limit, keep=always_scored)
        done = 0

        def tick(n: int, split: str = split, total: int = len(rows)) -> None:
            nonlocal done
            done += n
            if progress:
                progress(split, min(done, total), total)

        records[split] = evaluate_rows(
            model, processor, rows, images, batch_size=batch_size, max_new_tokens=max_new_tokens, min_k=min_k,
            membership=split in ("forget_privacy", "holdout"), progress=tick,
        )
    metrics = {
        "model": str(model_dir), "benchmark": str(bench_dir), "benchmark_hash": bench.meta["content_hash"],
        "splits": {s: split_metrics(r, known) for s, r in records.items()},
        "seconds": round(time.perf_counter() - began, 2), "device": str(next(model.parameters()).device),
        "torch_threads": torch.get_num_threads(), "min_k": min_k,
        "skipped": {s: "not in this dataset" for s in wanted if s not in bench.splits},
    }
    siblings = set((bench.meta.get("forget_request") or {}).get("sibling_patients", []))
    if siblings and "retain" in records:  # the collateral figure: what the request's neighbours kept
        metrics["siblings"] = split_metrics([r for r in records["retain"] if r["patient_id"] in siblings], known)
    if "forget_privacy" in records and "holdout" in records:
        metrics["membership"] = membership(records["forget_privacy"] + records["holdout"])
    return metrics, [r for split in splits for r in records[split]]


def oracle_comparison(metrics: dict, records: list[dict], oracle_metrics: dict, oracle_records: list[dict],
                      known: dict[str, set[str]]) -> dict:
    """The model against a retrained oracle evaluated on the same items, as the synthetic run compares them:
    forget quality (KS test of MCQ truth ratios) on each forget split, PrivLeak per attack, refusal rates
    and their gaps to the oracle. What cannot be computed is None, and `notes` says why."""
    from medforget.evaluate.compare import compare

    splits = {r["split"] for r in records}
    scenario = ("both" if {"forget_privacy", "forget_incorrect"} <= splits else
                "incorrect" if "forget_incorrect" in splits and "forget_privacy" not in splits else "privacy")
    result = compare({"model": metrics, "oracle": oracle_metrics}, {"model": records, "oracle": oracle_records},
                     scenario=scenario, base=None, known=known)["model"]
    notes = [n for n in result["notes"] if "vanilla" not in n]  # UES needs a vanilla model: not part of this comparison
    return {"oracle": oracle_metrics["model"], "scenario": scenario, "forget_quality": result["forget_quality"],
            "privleak": result["privleak"], "refusal": result["refusal"], "notes": notes}


def sample_rows(rows: list[dict], limit: int | None, keep: Callable[[dict], bool] = lambda row: False) -> list[dict]:
    """`limit` rows spread over the whole split, the same ones for every model: the rows whose id hashes lowest,
    in split order, plus every row that `keep` accepts. (A split lists one patient's rows after another and
    record items before knowledge and image items, so its first rows would describe a few patients and one
    kind of item.)"""
    if limit is None or len(rows) <= limit:
        return rows
    kept = {i for i, r in enumerate(rows) if keep(r)}
    others = [i for i in range(len(rows)) if i not in kept]
    ranked = sorted(others, key=lambda i: hashlib.sha256(rows[i]["id"].encode()).digest())
    return [rows[i] for i in sorted(kept | set(ranked[:limit]))]


def write_results(metrics: dict, records: list[dict], out: Path) -> tuple[Path, Path]:
    """`out` (JSON) and `out` with .parquet (per item), each written to a temporary name and moved into place."""
    out = Path(out)
    items = out.with_suffix(".parquet")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_items = items.with_name(f".{items.name}.tmp")
    pq.write_table(pa.Table.from_pylist(records), tmp_items)
    tmp_json = out.with_name(f".{out.name}.tmp")
    tmp_json.write_text(json.dumps(metrics, indent=2, default=float) + "\n")
    os.replace(tmp_items, items)
    os.replace(tmp_json, out)
    return out, items


def read_items(path: Path) -> list[dict]:
    return pq.read_table(Path(path).with_suffix(".parquet")).to_pylist()

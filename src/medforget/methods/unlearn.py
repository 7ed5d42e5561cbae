"""`unlearn`: check everything, then run one method on one scenario's forget set into a fresh folder.

Every input is checked before the output folder exists. While a method trains, the folder holds a plan
file naming the exact run; if the run fails, the folder is removed unless a resumable training
checkpoint is in it, and the same command (same plan) then resumes instead of refusing the folder.
`unlearning.json` is written last and marks a finished output.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict
from pathlib import Path

from medforget.errors import MedforgetError, read_json
from medforget.methods.base import Job
from medforget.methods.registry import apply_training, get_method, parse_overrides
from medforget.models.loading import HUB_ID, check_model_folder, check_model_source
from medforget.train.loop import CHECKPOINT_DIR, RECORD_FILE, Reporter, is_main_process
from medforget.world.storage import Benchmark, load_benchmark

FORGET_SPLITS = {"privacy": ("forget_privacy",), "incorrect": ("forget_incorrect",), "both": ("forget_privacy", "forget_incorrect")}
UNLEARNING_FILE = "unlearning.json"
PLAN_FILE = ".unlearn-plan.json"


def unlearn(
    model_dir: str | Path, bench_dir: str | Path, method: str, scenario: str, out_dir: str | Path,
    overrides: list[str] | tuple[str, ...] = (), report: Reporter | None = None, *, overwrite: bool = False,
) -> dict:
    """Unlearn `scenario`'s forget set from the fine-tuned model in `model_dir` with `method`; return the
    record written to `out_dir/unlearning.json`."""
    began = time.perf_counter()
    source = str(model_dir)
    model_dir, bench_dir, out = Path(model_dir), Path(bench_dir), Path(out_dir)
    impl = get_method(method)
    if scenario not in FORGET_SPLITS:
        raise MedforgetError(f"unknown scenario {scenario!r}; choose one of: {', '.join(FORGET_SPLITS)}")
    params, training = parse_overrides(impl, list(overrides))
    vanilla = finetune_record(source)
    bench = load_benchmark(bench_dir)
    if vanilla.get("benchmark_hash") not in (None, bench.meta["content_hash"]):
        raise MedforgetError(f"{model_dir} was fine-tuned on another benchmark ({vanilla.get('benchmark')}), not on {bench_dir}")
    forget = forget_rows(bench, scenario)
    retain = bench["retain"].to_list() if impl.needs_retain else []
    if impl.needs_retain and not retain:
        raise MedforgetError(f"{method} needs retain rows, but the retain split of {bench_dir} is empty")
    cfg = apply_training(impl.default_config(vanilla), training)
    job = Job(model_dir=model_dir, bench=bench, scenario=scenario, forget=forget, retain=retain, params=params,
              cfg=cfg, out=out, vanilla=vanilla, report=report)
    impl.check(job)
    plan = json.loads(json.dumps({
        "method": method, "scenario": scenario, "hyperparameters": asdict(params), "train_config": cfg.to_dict(),
        "model": str(model_dir.resolve()) if model_dir.exists() else source, "benchmark_hash": bench.meta["content_hash"],
    }, default=str))
    main = is_main_process()  # under `accelerate launch` only rank 0 touches the output folder's files
    if main:
        _claim(out, plan, overwrite, inputs=(model_dir, bench_dir) if model_dir.exists() else (bench_dir,))
    try:
        outcome = impl.run(job)
    except BaseException:
        if main and not any(out.rglob(CHECKPOINT_DIR)):
            shutil.rmtree(out, ignore_errors=True)
        raise
    record = {**plan, "benchmark": str(bench_dir.resolve()), "forget_rows": len(forget),
              "retain_rows": len(retain), **outcome, "seconds": round(time.perf_counter() - began, 2)}
    if main:
        (out / UNLEARNING_FILE).write_text(json.dumps(record, indent=2, default=str) + "\n")
        (out / PLAN_FILE).unlink()
    return record


#: The record of a model medforget did not fine-tune (no training.json): the methods' own training
#: defaults, with the vision tower frozen (an unknown model's image reader is what the rest was fitted to);
#: `--set train_vision=true`, `lr=`, `lora_r=` change them.
EXTERNAL_RECORD = {"stage": "train", "config": {"train_vision": False}, "external": True}


def finetune_record(model: str | Path) -> dict:
    """The training record of a model made by `medforget finetune`, or EXTERNAL_RECORD for any other model:
    a model folder, a LoRA adapter folder (loaded onto the base it names) or a hub id; a record of another
    stage (a pretrained base) is refused by name."""
    expected = f"a fine-tuned model folder (by `medforget finetune`, whose {RECORD_FILE} records stage 'train', or any other)"
    model_dir = Path(model)
    if not model_dir.is_dir():
        if HUB_ID.match(str(model)):
            check_model_source(str(model))
            return dict(EXTERNAL_RECORD)
        raise MedforgetError(f"model folder not found: {model_dir} (expected {expected}, a LoRA adapter folder or a hub id)")
    path = model_dir / RECORD_FILE
    if not path.is_file():
        check_model_source(str(model_dir))
        return dict(EXTERNAL_RECORD)
    record = read_json(path, expected)
    stage = record.get("stage") if isinstance(record, dict) else None
    if stage != "train":
        raise MedforgetError(f"{model_dir} is not a fine-tuned checkpoint: its {RECORD_FILE} records stage {stage!r} (expected {expected})")
    check_model_folder(model_dir)
    return record


def forget_rows(bench: Benchmark, scenario: str) -> list[dict]:
    rows = [row for split in FORGET_SPLITS[scenario] for row in bench[split].to_list()]
    if not rows:
        raise MedforgetError(f"nothing to forget: {' and '.join(FORGET_SPLITS[scenario])} of {bench.folder} is empty")
    return rows


def _claim(out: Path, plan: dict, overwrite: bool, inputs: tuple[Path, ...]) -> None:
    """Make `out` this run's folder: new, emptied (--overwrite), or an interrupted run of the same plan."""
    for source in inputs:
        if source.resolve().is_relative_to(out.resolve()):
            raise MedforgetError(f"output folder {out} would contain or replace the input {source}")
    if out.exists() and not out.is_dir():
        raise MedforgetError(f"output {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite and _read_plan(out / PLAN_FILE) == plan:
            return  # resume: train() picks up the checkpoint left by the interrupted run
        if not overwrite:
            raise MedforgetError(f"output folder {out} is not empty; pass --overwrite to replace it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / PLAN_FILE).write_text(json.dumps(plan, indent=2) + "\n")


def _read_plan(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None

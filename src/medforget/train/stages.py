"""The model stages of the pipeline: build the tiny default, pretrain it, fine-tune any model.

Each stage reads a benchmark folder and a model folder and writes a model folder that every other command
loads like a hub checkpoint.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

from medforget.errors import MedforgetError
from medforget.models.loading import load_model
from medforget.models.tiny import TINY_SIZES, build_tiny_model
from medforget.train.config import TrainConfig
from medforget.train.examples import format_rows
from medforget.train.loop import RECORD_FILE, Reporter, TrainResult, make_accelerator, train
from medforget.train.vision import VisionWarmup, warm_up_vision
from medforget.world.storage import Benchmark, load_benchmark

TEXT_SPLITS = ("train", "test_retain", "test_forget", "holdout", "general", "pretrain")
EXCLUDABLE = {"forget": ("forget_privacy", "forget_incorrect"), "forget_privacy": ("forget_privacy",), "forget_incorrect": ("forget_incorrect",)}


def benchmark_texts(bench: Benchmark) -> list[str]:
    """Every string a model may read or write about this benchmark, so the tokenizer covers them all alike
    (members and non-members get the same tokenisation, which membership inference relies on)."""
    from medforget.evaluate.metrics.refusal import REFUSAL_POOL

    texts: list[str] = list(REFUSAL_POOL)
    for split in (s for s in TEXT_SPLITS if s in bench.splits):  # an imported folder has fewer splits
        ds = bench[split]
        texts += ds["question"]
        texts += ds["answer"]
        texts += ds["true_answer"]
        texts += [o for options in ds["options"] for o in options]
    return texts


#: The tiny model's input size on imported data (its processor resizes every scan to it).
IMPORTED_IMAGE_SIZE = 64


def init_model(bench_dir: Path, out: Path, size: str = "tiny", seed: int = 0, overwrite: bool = False) -> Path:
    if size not in TINY_SIZES:
        raise MedforgetError(f"unknown model size {size!r}; choose one of: {', '.join(TINY_SIZES)}")
    bench = load_benchmark(bench_dir)
    _prepare_out(Path(out), overwrite)
    image_size = bench.meta.get("config", {}).get("image_size") or IMPORTED_IMAGE_SIZE  # imported scans vary in size
    tmp = Path(out).with_name(Path(out).name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    build_tiny_model(benchmark_texts(bench), tmp, size=size, image_size=image_size, seed=seed)
    _move_into_place(tmp, Path(out))
    return Path(out)


def training_rows(bench: Benchmark, split: str, exclude: Sequence[str] = ()) -> list[dict]:
    """Rows of `split` minus the ids of the excluded splits (`exclude=['forget']` gives the oracle's data)."""
    dropped: set[str] = set()
    for name in exclude:
        if name not in EXCLUDABLE:
            raise MedforgetError(f"cannot exclude {name!r}; choose from: {', '.join(EXCLUDABLE)}")
        for part in EXCLUDABLE[name]:
            dropped.update(bench[part]["id"])
    rows = [r for r in bench[split].to_list() if r["id"] not in dropped]
    if not rows:
        raise MedforgetError(f"no rows left to train on in {split!r} after excluding {', '.join(exclude)}")
    return rows


def run_stage(
    model_dir: str | Path, bench_dir: Path, out: Path, split: str, cfg: TrainConfig, *,
    exclude: Sequence[str] = (), overwrite: bool = False, report: Reporter | None = None,
    vision_warmup: VisionWarmup | None = None,
) -> TrainResult:
    """Train the model in `model_dir` on one split of the benchmark and save it to `out`.

    `vision_warmup` first trains the vision tower alone on the pretrain patients' scans (embedded default)."""
    out = Path(out)
    state = make_accelerator(cfg)  # under `accelerate launch` only the main process touches the output folder
    if state.is_main_process:
        _prepare_out(out, overwrite, resumable=True)
    state.wait_for_everyone()
    bench = load_benchmark(bench_dir)
    rows = training_rows(bench, split, exclude)
    model, processor = load_model(model_dir, lora=cfg.lora)
    warmup = warm_up_vision(model, processor, bench, vision_warmup) if vision_warmup else None
    examples = format_rows(bench, rows, processor)
    result = train(model, processor, examples, cfg, out, report=report, accelerator=state)
    if state.is_main_process:
        record_file = out / RECORD_FILE
        record = json.loads(record_file.read_text())
        record.update({"stage": split, "base_model": str(model_dir), "benchmark": str(bench_dir),
                       "benchmark_hash": bench.meta["content_hash"], "excluded": list(exclude), "rows": len(rows),
                       "vision_warmup": warmup})
        record_file.write_text(json.dumps(record, indent=2, default=str) + "\n")
    state.wait_for_everyone()
    return result


def _prepare_out(out: Path, overwrite: bool, resumable: bool = False) -> None:
    """Refuse to clobber a finished model unless asked; a folder holding only a checkpoint is resumed."""
    if not out.exists() or not any(out.iterdir()):
        return
    if resumable and not (out / RECORD_FILE).exists() and not (out / "config.json").exists():
        return  # an interrupted run: train() resumes from its checkpoint
    if not overwrite:
        raise MedforgetError(f"output folder {out} is not empty; pass --overwrite to replace it")
    shutil.rmtree(out)


def _move_into_place(tmp: Path, out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)

"""Surrogate encoders for transfer: a vision tower the attacker never uses, built the way the embedded
default's tower is built (`train/vision.py`), from other random weights and another seed.

A protection optimised on the attacker's own tower (white-box) is the easy case; a data owner does not have
the model that will be fine-tuned on the released scans. A surrogate is a fresh tiny LLaVA (weights drawn
from `seed`) whose vision tower is warmed up on the same benchmark's `pretrain` scans with the same recipe
and `seed` (other heads, other batch order, other augmentation). Its projector and language model stay
random: the protection only reads the projected image features, and a random projector keeps the tower's
geometry. The folder is an ordinary model folder, so `protect --encoder` and `protect-eval --encoder` take it.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path

from medforget.errors import MedforgetError
from medforget.models.loading import load_model, save_model
from medforget.models.tiny import TINY_SIZES, build_tiny_model
from medforget.train.config import vision_config
from medforget.train.stages import IMPORTED_IMAGE_SIZE, benchmark_texts
from medforget.train.vision import VisionWarmup, warm_up_vision
from medforget.world.storage import load_benchmark, write_atomically

SURROGATE_FILE = "surrogate.json"


def surrogate_warmup(preset: str, seed: int, epochs: int | None = None) -> VisionWarmup:
    """The preset's vision warm-up with another seed (and, to make it cheaper, fewer epochs)."""
    if seed < 0:
        raise MedforgetError(f"surrogate seed must be >= 0, got {seed}")
    if epochs is not None and epochs < 1:
        raise MedforgetError(f"warm-up epochs must be >= 1, got {epochs}")
    cfg = replace(vision_config(preset), seed=seed)
    return cfg if epochs is None else replace(cfg, epochs=epochs)


def build_surrogate(
    bench_dir: str | Path, out_dir: str | Path, seed: int, *, epochs: int | None = None, size: str = "tiny",
    overwrite: bool = False,
) -> dict:
    """Build one surrogate model folder in `out_dir` (atomically) and return its record (`surrogate.json`):
    the seed, the warm-up settings and results (head accuracies and nearest-neighbour patient identification
    on `general` scans) and what it cost in seconds."""
    began = time.perf_counter()
    if size not in TINY_SIZES:
        raise MedforgetError(f"unknown model size {size!r}; choose one of: {', '.join(TINY_SIZES)}")
    bench_dir, out = Path(bench_dir), Path(out_dir)
    bench = load_benchmark(bench_dir)
    warmup = surrogate_warmup(bench.meta["preset"], seed, epochs)
    if out.exists() and not out.is_dir():
        raise MedforgetError(f"output {out} is a file, not a folder")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise MedforgetError(f"output folder {out} exists and is not empty; pass --overwrite to replace it")
    if "pretrain" not in set(bench["scans"]["group"]):
        raise MedforgetError(f"{bench_dir}: no pretrain scans to warm a surrogate tower up on")
    image_size = bench.meta.get("config", {}).get("image_size") or IMPORTED_IMAGE_SIZE

    def fill(tmp: Path) -> None:
        build_tiny_model(benchmark_texts(bench), tmp, size=size, image_size=image_size, seed=seed)
        model, processor = load_model(tmp)
        result = warm_up_vision(model, processor, bench, warmup)
        save_model(model, processor, tmp)
        record = {"seed": seed, "size": size, "benchmark": str(bench_dir), "benchmark_hash": bench.meta["content_hash"],
                  "identity_cue": bench.meta.get("identity_cue", "marker"), "warmup": asdict(warmup),
                  "result": result, "seconds": round(time.perf_counter() - began, 1)}
        (tmp / SURROGATE_FILE).write_text(json.dumps(record, indent=2) + "\n")

    write_atomically(out, fill, overwrite)
    return json.loads((out / SURROGATE_FILE).read_text())

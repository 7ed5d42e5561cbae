"""An attacker whose vision tower was never trained to re-identify patients: the same embedded default,
pretrained and fine-tuned as `medforget run` does, except that the vision warm-up has no same-patient loss.

    python benchmarks/protect_generic_tower.py runs/anatomy --out runs/anatomy-generic
    python benchmarks/learning_figures.py runs/anatomy-generic            # does it still learn who is who?
    python benchmarks/protect_frontier.py runs/anatomy-generic --out ...  # and is protection different?

The embedded default's warm-up (train/vision.py) trains the tower on scan attributes *and* with a supervised
contrastive loss that maps a patient's scans together, so the frozen tower is a re-identification model: the
strongest attacker. A real VLM's tower (CLIP-like) was trained on generic image-text pairs. This builds the
other end: `--contrastive-weight 0` (default) keeps the attribute heads (modality, region, finding, laterality,
quality) and drops the same-patient loss. OUT gets `bench` (a link to RUN_DIR/bench), `models/base` (a copy of
RUN_DIR's), `models/pretrained` and `models/vanilla`, each trained with the run preset's settings and seed 0,
as the pipeline's stages are. About 8 minutes on demo on the 2-core CPU. Run it with OMP_NUM_THREADS=1.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from medforget.cli.shared import quiet_transformers
from medforget.errors import MedforgetError
from medforget.train.config import stage_config, vision_config
from medforget.train.stages import run_stage
from medforget.world.storage import load_benchmark


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--contrastive-weight", type=float, default=0.0, help="of the same-patient loss (the default warm-up: 0.3)")
    args = parser.parse_args(argv)
    quiet_transformers()
    began = time.perf_counter()
    try:
        bench = args.run_dir / "bench"
        preset = load_benchmark(bench).meta.get("preset", "demo")
        if not (args.run_dir / "models" / "base").is_dir():
            raise MedforgetError(f"{args.run_dir}: no models/base; expected a `medforget run` folder of the embedded default")
        if args.out.exists() and any(args.out.iterdir()):
            raise MedforgetError(f"output folder {args.out} exists and is not empty")
        if args.contrastive_weight < 0:
            raise MedforgetError(f"contrastive weight must be >= 0, got {args.contrastive_weight}")
        models = args.out / "models"
        models.mkdir(parents=True, exist_ok=True)
        (args.out / "bench").symlink_to(bench.resolve())
        shutil.copytree(args.run_dir / "models" / "base", models / "base")
        vision = replace(vision_config(preset), contrastive_weight=args.contrastive_weight)
        for source, split, stage, out, warmup in (("base", "pretrain", "pretrain", "pretrained", vision),
                                                  ("pretrained", "train", "finetune", "vanilla", None)):
            torch.set_num_threads(1)
            torch.manual_seed(0)  # as the pipeline's stages start
            result = run_stage(models / source, args.out / "bench", models / out, split, stage_config(preset, stage),
                               exclude=[], overwrite=True, vision_warmup=warmup)
            print(f"{out}: {result.steps} steps, {result.seconds:.0f} s", flush=True)
    except MedforgetError as err:
        sys.exit(f"error: {err}")
    print(f"({time.perf_counter() - began:.0f} s; attacker folder {args.out})")


if __name__ == "__main__":
    main()

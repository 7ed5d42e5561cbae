"""Build one surrogate encoder for transfer (issue 19) and say what it cost.

    python benchmarks/protect_surrogate.py BENCH_DIR OUT_DIR [--seed 1] [--epochs N]

A fresh tiny LLaVA drawn from --seed whose vision tower is warmed up (train/vision.py, the preset's recipe,
--seed for heads, batch order and augmentation; --epochs to make it cheaper) on BENCH_DIR's pretraining scans:
a tower the attacker never uses. OUT_DIR is a model folder for `protect --encoder` / `protect-eval --encoder`,
with surrogate.json (warm-up accuracies on general scans, nearest-neighbour patient identification, seconds).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from medforget.errors import MedforgetError
from medforget.protect.surrogate import build_surrogate


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=None, help="warm-up epochs (default: the preset's)")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    try:
        record = build_surrogate(args.bench_dir, args.out_dir, args.seed, epochs=args.epochs, overwrite=args.overwrite)
    except MedforgetError as err:
        sys.exit(f"error: {err}")
    print(json.dumps({k: record[k] for k in ("seed", "identity_cue", "warmup", "result", "seconds")}, indent=2))


if __name__ == "__main__":
    main()

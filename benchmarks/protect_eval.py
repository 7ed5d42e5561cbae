"""The protection protocol of issue 7 on a run folder, with the issue's settings; prints the table.

    python benchmarks/protect_eval.py runs/demo                     # what docs/protect.md quotes
    python benchmarks/protect_eval.py runs/demo --transforms none   # without the post-processing conditions

RUN_DIR is a `medforget run` folder (bench/ and models/). The attacker starts from the run's vanilla model
(fine-tuned on the `finetune` patients, never on the holdout ones: it already answers record questions from
scans, so 15 epochs on their identifying-field items (192 on demo) teach it the new patients) and fine-tunes on the holdout patients'
image-conditioned private items with their training scans clean (`none`), protected (`protected`), protected
then post-processed (`protected+jpeg95`, ...) and blank (`blank`, the floor), then is asked about the same
patients on clean test scans. `--start pretrained` attacks from `models/pretrained` instead.

The protection (the issue's settings: eps 8/255, at least 35 dB PSNR, the protocol's default `min_psnr`) is
`targeted`, optimised against the starting model, 9 steps of RMS 0.5/255 from a zero start, each an L2 step
inside the eps box (docs/protect.md, "PSNR floor"): on the demo holdout scans 39.0 dB mean and 38.0 dB minimum
PSNR. Results go to RUN_DIR/protect_eval/ (or --out). Run it with OMP_NUM_THREADS=1 on a shared CPU.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from medforget.cli.shared import finished_stages
from medforget.protect.options import parse_eps, transform_names
from medforget.errors import MedforgetError
from medforget.protect.protocol import TABLE_FILE, ProtectEvalConfig, run_protect_eval

ISSUE_SETTINGS = {"method": "targeted", "eps": 8 / 255, "steps": 9, "step_size": "0.5/255", "random_start": False}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--start", default="vanilla", help="model folder under RUN_DIR/models to attack from")
    parser.add_argument("--out", type=Path, default=None, help="default: RUN_DIR/protect_eval")
    parser.add_argument("--transforms", action="append", default=[], help="post-processings (default: all; 'none': none)")
    parser.add_argument("--method", default=ISSUE_SETTINGS["method"])
    parser.add_argument("--steps", type=int, default=ISSUE_SETTINGS["steps"])
    parser.add_argument("--step-size", default=ISSUE_SETTINGS["step_size"])
    parser.add_argument("--random-start", action="store_true")
    parser.add_argument("--ratio", type=float, default=1.0)
    parser.add_argument("--patients", default="holdout")
    parser.add_argument("--epochs", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        names = transform_names(args.transforms)
        cfg = ProtectEvalConfig(
            method=args.method, eps=ISSUE_SETTINGS["eps"], steps=args.steps,
            step_size=parse_eps(args.step_size, "--step-size"), random_start=args.random_start, ratio=args.ratio,
            patients=args.patients, epochs=args.epochs, seed=args.seed, **({"transforms": names} if names is not None else {}),
        )
        out = args.out or args.run_dir / "protect_eval"
        began = time.perf_counter()

        run_protect_eval(args.run_dir / "bench", args.run_dir / "models" / args.start, out, cfg, overwrite=True, progress=finished_stages(began))
    except MedforgetError as err:
        sys.exit(f"error: {err}")
    print((out / TABLE_FILE).read_text())
    print(f"({time.perf_counter() - began:.0f} s; JSON and table in {out})")


if __name__ == "__main__":
    main()

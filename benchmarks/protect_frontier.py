"""The protection frontier of issue 19: leak on clean scans per world x budget x method x protector.

    python benchmarks/protect_frontier.py RUN_DIR [RUN_DIR ...] --out DIR
    python benchmarks/protect_frontier.py runs/anatomy runs/demo --out runs/frontier --surrogates-dir runs/surrogates

Each RUN_DIR is a `medforget run` folder (bench/ and models/); its name labels its rows, its benchmark's
identity cue (`marker` or `anatomy`) is shown beside it. For each budget (`--eps`, default 2, 4, 8 and 16 / 255)
and method (`--method`, default targeted), `protect-eval` runs twice: the protection optimised on the
attacker's starting model (`white-box`) and on surrogate towers it never uses (`transfer`, `--surrogates`
towers warmed up with seeds 1..k on the same benchmark's pretraining scans, an ensemble when k > 1, built
under `--surrogates-dir`, default OUT.surrogates, or reused from there). Each cell: `--steps` zero-start steps of `--step-fraction` x eps
under the `--min-psnr` floor (0: none), every post-processing (`--transforms`), the blank floor; `none` and
`blank` are fine-tuned once per world (with --reuse-file, every attack is kept there and reused by later
calls: extend a frontier, or resume an interrupted one, without fine-tuning again). Writes frontier.json, frontier.md (printed) and frontier.png (leak /
unprotected against PSNR), and every cell's protect_eval.{json,md} under cells/. Run it with OMP_NUM_THREADS=1.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from medforget.cli.shared import finished_stages, quiet_transformers
from medforget.errors import MedforgetError
from medforget.protect.frontier import DEFAULT_EPS, FRONTIER_TABLE, PROTECTORS, FrontierConfig, run_frontier
from medforget.protect.options import parse_eps, transform_names


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, default=None, help="default: RUN_DIR/protect_frontier (one run folder only)")
    parser.add_argument("--start", default="vanilla", help="model folder under RUN_DIR/models the attacker starts from")
    parser.add_argument("--eps", action="append", default=[], help="budget, repeat or comma-separate (default 2/255,4/255,8/255,16/255)")
    parser.add_argument("--method", action="append", default=[], help="protection method, repeat or comma-separate (default targeted)")
    parser.add_argument("--protector", action="append", default=[], choices=PROTECTORS, help="default: both")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--step-fraction", type=float, default=0.1, help="each step, as a fraction of eps")
    parser.add_argument("--min-psnr", type=float, default=35.0, help="PSNR floor in dB; 0: none (sign steps)")
    parser.add_argument("--transforms", action="append", default=[], help="post-processings (default: all; 'none': none)")
    parser.add_argument("--surrogates", type=int, default=1, help="surrogate towers for the transfer column")
    parser.add_argument("--surrogate-epochs", type=int, default=None, help="their warm-up epochs (default: the preset's)")
    parser.add_argument("--surrogates-dir", type=Path, default=None, help="build or reuse surrogates here (default: OUT.surrogates)")
    parser.add_argument("--reuse-file", type=Path, default=None,
                        help="keep every attack's results in this JSON file and reuse them on later calls")
    parser.add_argument("--patients", default="holdout")
    parser.add_argument("--max-patients", type=int, default=None)
    parser.add_argument("--epochs", type=float, default=None)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    quiet_transformers()
    began = time.perf_counter()
    try:
        if args.out is None and len(args.run_dirs) > 1:
            raise MedforgetError("several run folders: give --out")
        out = args.out or args.run_dirs[0] / "protect_frontier"
        budgets = [parse_eps(e) for value in args.eps for e in value.split(",") if e.strip()]
        methods = [m.strip() for value in args.method for m in value.split(",") if m.strip()]
        names = transform_names(args.transforms)
        cfg = FrontierConfig(
            eps=tuple(budgets) or DEFAULT_EPS, methods=tuple(methods) or ("targeted",),
            protectors=tuple(args.protector) or PROTECTORS, steps=args.steps, step_fraction=args.step_fraction,
            min_psnr=args.min_psnr or None, surrogates=args.surrogates, surrogate_epochs=args.surrogate_epochs,
            patients=args.patients, max_patients=args.max_patients, epochs=args.epochs, max_steps=args.max_steps,
            seed=args.seed, **({"transforms": names} if names is not None else {}),
        )

        run_frontier(args.run_dirs, out, cfg, start=args.start, surrogates_dir=args.surrogates_dir,
                     reuse_file=args.reuse_file, overwrite=args.overwrite, progress=finished_stages(began))
    except MedforgetError as err:
        sys.exit(f"error: {err}")
    print((out / FRONTIER_TABLE).read_text())
    print(f"({time.perf_counter() - began:.0f} s; frontier.json, frontier.md, frontier.png and cells/ in {out})")


if __name__ == "__main__":
    main()

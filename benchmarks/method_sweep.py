"""Settings of one unlearning method on a finished `medforget run` folder, scored as the run scores its own
methods: `unlearn` from the run's vanilla model, `evaluate_model` on the scenario's splits with the preset's
item limit, then a leaderboard of the run's models plus these. The run folder is only read; everything is
written under --out (a copy of the run's records with the new models added, and its leaderboard.md).

    python benchmarks/method_sweep.py --run runs/demo --out /tmp/sweep \
        rmu:privacy:steering=100,alpha=10,lr=3e-2  mmunlearner:privacy:lr=7e-4  manu:incorrect:

Each spec is METHOD:SCENARIO:KEY=VALUE,... (empty settings: the defaults); on the leaderboard it is named
METHOD-KEYVALUE-...@SCENARIO (rmu-steering100-alpha10-lr3e-2@privacy).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a finished `medforget run` folder (read only)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("specs", nargs="+")
    args = parser.parse_args()

    from medforget.evaluate.run import evaluate_model, write_results
    from medforget.methods.unlearn import unlearn
    from medforget.pipeline import EVAL_LIMITS, FULL_SPLITS, SCENARIO_SPLITS
    from medforget.report import build_report

    torch.set_num_threads(1)
    board = args.out / "run"
    (board / "eval").mkdir(parents=True, exist_ok=True)
    for name in ("run.yaml", "run.json"):
        shutil.copy(args.run / name, board / name)
    for item in (args.run / "eval").iterdir():
        target = board / "eval" / item.name
        if not target.exists():
            target.symlink_to(item.resolve())
    if not (board / "bench").exists():
        (board / "bench").symlink_to((args.run / "bench").resolve())
    run = json.loads((board / "run.json").read_text())
    limit = EVAL_LIMITS[run["preset"]]
    for spec in args.specs:
        method, scenario, settings = (spec.split(":") + [""])[:3]
        name = "-".join([method, *(s.replace("=", "") for s in settings.split(",") if s)]) + f"@{scenario}"
        out = args.out / "models" / name
        record = unlearn(args.run / "models" / "vanilla", args.run / "bench", method, scenario, out,
                         [s for s in settings.split(",") if s], overwrite=True)
        metrics, records = evaluate_model(out, args.run / "bench", SCENARIO_SPLITS[scenario], limit=limit, full=FULL_SPLITS)
        write_results(metrics, records, board / "eval" / f"{name}.json")
        run["models"][name] = {"kind": "method", "method": name, "scenario": scenario, "path": str(out), "seconds": record["seconds"]}
        run["methods"].append(name)
        (board / "run.json").write_text(json.dumps(run, indent=1))
        print(f"{name}: unlearned in {record['seconds']} s, evaluated in {metrics['seconds']} s", flush=True)
    print(build_report(board))


if __name__ == "__main__":
    main()

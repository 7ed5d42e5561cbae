"""One method, unlearned and evaluated exactly as `medforget run` does, on a finished run's models, placed on
that run's leaderboards (same vanilla, oracle, base and bootstrap) without touching the run folder.

    python benchmarks/method_vs_run.py --run runs/demo --method mimic --out /tmp/mimic-demo
    python benchmarks/method_vs_run.py --run runs/demo --method mimic --out /tmp/m --set lr=3e-4 --scenarios privacy

`--out` gets models/<method>@<scenario>, eval/ (links to the run's eval files plus the method's own),
bench (a link), run.json with the method added, and the report files (leaderboard.md, results.json). A
model or evaluation already in `--out` is reused, so a second call only rebuilds the report.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from medforget.evaluate.run import evaluate_model, write_results
from medforget.methods.unlearn import UNLEARNING_FILE, unlearn
from medforget.pipeline import EVAL_LIMITS, FULL_SPLITS, SCENARIO_SPLITS
from medforget.report import build_report

SHOWN = {"privacy": ("forget", "test_forget", "leak", "mia_auroc", "retain", "test_retain", "general", "ues_privacy",
                     "refusal_forget", "refusal_test_forget", "refusal_holdout"),
         "incorrect": ("corrupted", "true", "corrupted_gen", "test_corrupted", "neighbour", "well_formed", "retain",
                       "general", "ues_incorrect")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--method", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--scenarios", nargs="+", default=None)
    ap.add_argument("--set", dest="settings", action="append", default=[])
    args = ap.parse_args()
    info = json.loads((args.run / "run.json").read_text())
    limit = EVAL_LIMITS.get(info.get("preset"))
    scenarios = args.scenarios or info["scenarios"]
    (args.out / "eval").mkdir(parents=True, exist_ok=True)
    for link, target in [(args.out / "bench", args.run / "bench")] + [
            (args.out / "eval" / f.name, f) for f in (args.run / "eval").iterdir() if not f.name.startswith(f"{args.method}@")]:
        if not link.exists():
            os.symlink(target.resolve(), link)
    for scenario in scenarios:
        name = f"{args.method}@{scenario}"
        model = args.out / "models" / name
        if not (model / UNLEARNING_FILE).is_file():
            began = time.perf_counter()
            record = unlearn(args.run / "models" / "vanilla", args.run / "bench", args.method, scenario, model, args.settings,
                             overwrite=True)
            print(f"{name}: {record['steps']} steps, {time.perf_counter() - began:.1f} s wall, {time.process_time():.1f} s CPU so far")
        record = json.loads((model / UNLEARNING_FILE).read_text())
        out = args.out / "eval" / f"{name}.json"
        if not out.is_file():
            metrics, records = evaluate_model(model, args.run / "bench", SCENARIO_SPLITS[scenario], limit=limit, full=FULL_SPLITS)
            write_results(metrics, records, out)
        info["models"][name] = {"kind": "method", "method": args.method, "scenario": scenario, "path": str(model),
                                "seconds": record["seconds"]}
    if args.method not in info["methods"]:
        info["methods"].append(args.method)
    (args.out / "run.json").write_text(json.dumps(info, indent=2) + "\n")
    build_report(args.out)
    results = json.loads((args.out / "results.json").read_text())
    for scenario in scenarios:
        print(f"\n{scenario}")
        print(f"{'model':<18}" + "".join(f"{c:>20}" for c in SHOWN[scenario]))
        for row in results["leaderboards"][scenario]["rows"]:
            cells = [row.get(c) for c in SHOWN[scenario]]
            print(f"{row['model']:<18}" + "".join(f"{c:>20.3f}" if isinstance(c, (int, float)) else f"{'–':>20}" for c in cells))
    print(f"\nleaderboards with 95 % intervals: {args.out / 'leaderboard.md'}")


if __name__ == "__main__":
    main()

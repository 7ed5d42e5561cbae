"""Do the verdicts hold across seeds? `medforget run` on several seeds (benchmark and training), then every
method's UES and main figures as mean ± sd over seeds, the Kendall tau of the method ranking between every
pair of seeds, and whether the oracle's membership AUROC interval includes 0.5 on every seed.

    python benchmarks/seed_stability.py --seeds 0 1 2                 # demo, into runs/seeds/seed-<s>
    python benchmarks/seed_stability.py --seeds 0 1 --preset smoke --methods ga --methods kl

Runs that are up to date are not redone (the pipeline's cache), so an interrupted study resumes. Targets
(issue 15): UES sd <= 0.03 for every method, tau >= 0.7 between every pair of seeds, and the privacy oracle's
forgotten-vs-holdout AUROC 95 % interval (bootstrap over patients) containing 0.5 on every seed: the oracle
never saw either group, so a benchmark whose groups it can tell apart has an artefact.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

FIGURES = {"privacy": ("ues_privacy", "forget", "leak", "mia_auroc", "retain", "general"),
           "incorrect": ("ues_incorrect", "corrupted", "true", "neighbour", "retain", "general")}


def run_seed(seed: int, preset: str, out: Path, methods: list[str]) -> dict:
    """The run's results.json, running (or resuming) it first."""
    cmd = [sys.executable, "-m", "medforget", "run", "--preset", preset, "--seed", str(seed), "--out", str(out)]
    cmd += [a for m in methods for a in ("--methods", m)]
    print(f"seed {seed}: {' '.join(cmd[2:])}", flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return json.loads((out / "results.json").read_text())


def rows(results: dict, scenario: str) -> dict[str, dict]:
    return {r["model"] if r["kind"] == "method" else r["kind"]: r
            for r in results["leaderboards"].get(scenario, {}).get("rows", []) if r["kind"] != "reference"}


def table(per_seed: list[dict], scenario: str) -> list[str]:
    """Mean ± sd over seeds of each figure, per model."""
    boards = [rows(r, scenario) for r in per_seed]
    models = [m for m in boards[0] if all(m in b for b in boards)]
    lines = [f"{scenario}: mean ± sd over {len(per_seed)} seeds", "  " + f"{'model':<12}" + "".join(f"{f:>22}" for f in FIGURES[scenario])]
    for m in models:
        cells = []
        for f in FIGURES[scenario]:
            values = [b[m].get(f) for b in boards]
            values = [v for v in values if v is not None]
            cells.append(f"{np.mean(values):.3f} ± {np.std(values, ddof=1) if len(values) > 1 else 0:.3f} (n={len(values)})" if values else "–")
        lines.append("  " + f"{m:<12}" + "".join(f"{c:>22}" for c in cells))
    return lines


def ranking(per_seed: list[dict], scenario: str, seeds: list[int]) -> list[str]:
    """Kendall tau between the methods' UES rankings of every pair of seeds."""
    key = FIGURES[scenario][0]
    boards = [{m: r[key] for m, r in rows(res, scenario).items() if r["kind"] == "method" and r.get(key) is not None} for res in per_seed]
    lines = []
    for (i, a), (j, b) in itertools.combinations(enumerate(boards), 2):
        common = sorted(set(a) & set(b))
        tau = kendalltau([a[m] for m in common], [b[m] for m in common]).statistic if len(common) > 1 else float("nan")
        lines.append(f"  {scenario} UES ranking, seeds {seeds[i]} vs {seeds[j]}: Kendall tau {tau:.2f} over {len(common)} methods (target >= 0.7)")
    return lines


def oracle_auroc(per_seed: list[dict], seeds: list[int]) -> list[str]:
    lines = []
    for seed, res in zip(seeds, per_seed):
        oracle = rows(res, "privacy").get("oracle", {})
        low, high, value = oracle.get("mia_auroc_ci_low"), oracle.get("mia_auroc_ci_high"), oracle.get("mia_auroc")
        verdict = "no interval" if low is None else "includes 0.5" if low <= 0.5 <= high else "EXCLUDES 0.5"
        shown = "–" if value is None else f"{value:.3f}" + ("" if low is None else f" [{low:.3f}, {high:.3f}]")
        lines.append(f"  seed {seed}: privacy oracle membership AUROC {shown}: {verdict}")
    return lines


#: Issue 18's targets for medforget's own method: (figure, how it is judged, bound). "near": within the bound of
#: the oracle's value; "at_most" / "at_least": the value against the bound; "of_vanilla": at least bound times
#: the vanilla model's; "at_least_oracle": at least the oracle's; "highest": the highest UES of all methods.
TARGETS = {
    "privacy": (("leak", "at_most", 0.01), ("forget", "near", 0.05), ("test_forget", "near", 0.05),
                ("mia_auroc", "near", 0.05), ("refusal_forget", "near", 0.05), ("forget_well_formed", "at_least_oracle", 0),
                ("retain", "of_vanilla", 0.97), ("general", "of_vanilla", 0.99), ("ues_privacy", "highest", 0)),
    "incorrect": (("corrupted", "near", 0.05), ("corrupted_gen", "near", 0.05), ("test_corrupted", "near", 0.05),
                  ("well_formed", "at_least_oracle", 0), ("retain", "of_vanilla", 0.97), ("general", "of_vanilla", 0.99),
                  ("ues_incorrect", "highest", 0)),
}


def targets(per_seed: list[dict], seeds: list[int], method: str) -> list[str]:
    """`method` against every target of issue 18, per seed: its value, the bound, met or missed and by how much."""
    lines = [f"{method} against issue 18's targets"]
    for scenario, checks in TARGETS.items():
        for seed, res in zip(seeds, per_seed):
            board = rows(res, scenario)
            mine, oracle, vanilla = board.get(method), board.get("oracle", {}), board.get("vanilla", {})
            if mine is None:
                lines.append(f"  {scenario} seed {seed}: {method} not in this run")
                continue
            for figure, how, bound in checks:
                value = mine.get(figure)
                if value is None:
                    lines.append(f"  {scenario} seed {seed}: {figure:<20} –")
                    continue
                if how == "highest":
                    best = max((r[figure] for m, r in board.items() if r["kind"] == "method" and r.get(figure) is not None), default=value)
                    goal, miss = f"highest ({best:.3f})", best - value
                elif how == "at_most":
                    goal, miss = f"<= {bound}", value - bound
                elif oracle.get(figure) is None or (how == "of_vanilla" and vanilla.get(figure) is None):
                    lines.append(f"  {scenario} seed {seed}: {figure:<20} {value:.3f}   no reference value")
                    continue
                elif how == "near":
                    goal, miss = f"oracle {oracle[figure]:.3f} +- {bound}", abs(value - oracle[figure]) - bound
                elif how == "at_least_oracle":
                    goal, miss = f">= oracle {oracle[figure]:.3f}", oracle[figure] - value
                else:
                    goal, miss = f">= {bound} x vanilla {vanilla[figure]:.3f}", bound * vanilla[figure] - value
                verdict = "met" if miss <= 1e-12 else f"MISSED by {miss:.3f}"
                lines.append(f"  {scenario} seed {seed}: {figure:<20} {value:.3f}   target {goal}: {verdict}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--out", type=Path, default=Path("runs/seeds"))
    parser.add_argument("--methods", action="append", default=[], help="methods to run (repeat; `all`: every registered method; default: the run's defaults)")
    parser.add_argument("--targets", default="mimic", help="the method checked against issue 18's targets on every seed ('' for none)")
    args = parser.parse_args()
    per_seed = [run_seed(s, args.preset, args.out / f"seed-{s}", args.methods) for s in args.seeds]
    lines = []
    for scenario in ("privacy", "incorrect"):
        lines += table(per_seed, scenario) + ranking(per_seed, scenario, args.seeds) + [""]
    lines += oracle_auroc(per_seed, args.seeds)
    if args.targets:
        lines += [""] + targets(per_seed, args.seeds, args.targets)
    print("\n".join(lines))


if __name__ == "__main__":
    main()

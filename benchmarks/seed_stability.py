"""Do the verdicts hold across seeds? `medforget run` on several seeds (benchmark and training), then every
method's UES and main figures as mean ± sd over seeds, the Kendall tau of the method ranking between every
pair of seeds, and whether the oracle's membership AUROC interval includes 0.5 on every seed.

    python benchmarks/seed_stability.py --seeds 0 1 2                 # demo, into runs/seeds/seed-<s>
    python benchmarks/seed_stability.py --seeds 0 1 --preset smoke --methods ga --methods kl
    python benchmarks/seed_stability.py --no-run --out runs/seeds --seeds 0 1 2   # the existing folders only

Runs that are up to date are not redone (the pipeline's cache), so an interrupted study resumes; `--no-run`
reads the folders as they are (a stage key changed by newer code would otherwise make the run re-train). Targets
(issue 15): UES sd <= 0.03 for every method, tau >= 0.7 between every pair of seeds, and the privacy oracle's
forgotten-vs-holdout AUROC 95 % interval (bootstrap over patients) containing 0.5 on every seed: the oracle
never saw either group, so a benchmark whose groups it can tell apart has an artefact.

"Patient sampling alone" asks how much of the seed-to-seed spread one seed's own sample already implies: the
report's bootstrap (its resamples of patients and facts, one resample applied to every model) rescored per
replicate, giving each method's within-seed sd of UES beside its between-seed sd, and the Kendall tau between
the method rankings of two independent replicates (the ranking's agreement with itself under resampling, the
ceiling the between-seed tau can be expected to reach with this many patients). The models stay fixed there,
so the between-seed spread may exceed it by what training and the seed's world add.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
from scipy.stats import chi2, kendalltau

from medforget.errors import MedforgetError
from medforget.evaluate.bootstrap import interval
from medforget.evaluate.efficiency import scenario_ues
from medforget.report.build import scoring_inputs

FIGURES = {"privacy": ("ues_privacy", "forget", "leak", "mia_auroc", "retain", "general"),
           "incorrect": ("ues_incorrect", "corrupted", "true", "neighbour", "retain", "general")}


def run_seed(seed: int, preset: str, out: Path, methods: list[str]) -> dict:
    """The run's results.json, running (or resuming) it first."""
    cmd = [sys.executable, "-m", "medforget", "run", "--preset", preset, "--seed", str(seed), "--out", str(out)]
    cmd += [a for m in methods for a in ("--methods", m)]
    print(f"seed {seed}: {' '.join(cmd[2:])}", flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return json.loads((out / "results.json").read_text())


def read_seed(seed: int, out: Path) -> dict:
    """The results.json of a run folder that already exists (`--no-run`)."""
    if not out.is_dir():
        raise MedforgetError(f"seed {seed}: no run folder {out} (run without --no-run first)")
    if not (out / "results.json").is_file():
        raise MedforgetError(f"seed {seed}: {out} has no results.json (an unfinished run? run without --no-run, or `medforget report {out}`)")
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


def ues_boards(per_seed: list[dict], scenario: str) -> list[dict[str, float]]:
    key = FIGURES[scenario][0]
    return [{m: r[key] for m, r in rows(res, scenario).items() if r["kind"] == "method" and r.get(key) is not None}
            for res in per_seed]


def seed_taus(per_seed: list[dict], scenario: str) -> list[tuple[int, int, float, int]]:
    """(i, j, Kendall tau, methods compared) between the methods' UES rankings of every pair of seeds."""
    out = []
    for (i, a), (j, b) in itertools.combinations(enumerate(ues_boards(per_seed, scenario)), 2):
        common = sorted(set(a) & set(b))
        tau = kendalltau([a[m] for m in common], [b[m] for m in common]).statistic if len(common) > 1 else float("nan")
        out.append((i, j, float(tau), len(common)))
    return out


def swaps(a: dict[str, float], b: dict[str, float]) -> list[tuple[str, str]]:
    """The pairs of methods ranked one way by `a` and the other way by `b` (ties are not swaps)."""
    common = sorted(set(a) & set(b))
    return [(m, n) for m, n in itertools.combinations(common, 2) if (a[m] - a[n]) * (b[m] - b[n]) < 0]


def ranking(per_seed: list[dict], scenario: str, seeds: list[int]) -> list[str]:
    """Kendall tau between the methods' UES rankings of every pair of seeds; below 0.7, which pairs of methods
    changed order (without ties, tau = 1 - 4 swaps / (n (n - 1)), so 0.7 allows 0.075 n (n - 1) swaps)."""
    boards = ues_boards(per_seed, scenario)
    lines = []
    for i, j, tau, n in seed_taus(per_seed, scenario):
        lines.append(f"  {scenario} UES ranking, seeds {seeds[i]} vs {seeds[j]}: Kendall tau {tau:.2f} over {n} methods (target >= 0.7)")
        if tau < 0.7:
            swapped = swaps(boards[i], boards[j])
            allowed = math.floor(0.075 * n * (n - 1) + 1e-9)
            lines.append(f"    {len(swapped)} of {n * (n - 1) // 2} pairs of methods change order (0.7 allows {allowed}): "
                         + ", ".join(f"{m}/{k}" for m, k in swapped))
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


#: The within-seed sd above which a method misses issue 15's UES sd target on sampling alone.
SD_TARGET = 0.03


def replicate_sd(samples: np.ndarray) -> float:
    """The sd of one model's bootstrap replicates (NaN ones, resamples that drew no item of a split, left out)."""
    values = np.asarray(samples, dtype=float)
    values = values[np.isfinite(values)]
    return float(np.std(values, ddof=1)) if values.size > 1 else float("nan")


def replicate_pairs(usable: np.ndarray, count: int, seed: int = 0) -> list[tuple[int, int]]:
    """`count` disjoint pairs of replicate indices drawn from `usable` (fewer when there are not 2 x count)."""
    order = np.random.default_rng(seed).permutation(np.asarray(usable, dtype=int))
    n = min(count, len(order) // 2)
    return [(int(order[2 * i]), int(order[2 * i + 1])) for i in range(n)]


def ranking_taus(matrix: np.ndarray, pairs: list[tuple[int, int]]) -> np.ndarray:
    """Kendall tau (tau-b, ties allowed) between the method rankings (rows: methods) of each pair of replicates
    (columns); NaN for a pair where every method ties."""
    return np.array([kendalltau(matrix[:, a], matrix[:, b]).statistic for a, b in pairs], dtype=float)


def noise_ceiling(matrix: np.ndarray, count: int = 200, seed: int = 0) -> tuple[np.ndarray, int]:
    """The ranking taus of `count` pairs of independent replicates, among those where every method has a UES;
    also how many replicates were usable."""
    usable = np.flatnonzero(np.isfinite(matrix).all(axis=0))
    return ranking_taus(matrix, replicate_pairs(usable, count, seed)), len(usable)


def sd_interval(values: list[float], level: float = 0.95) -> tuple[float, float] | None:
    """The chi-square interval of an sd over few seeds (normal spread assumed): how loosely 3 seeds pin it down."""
    n = len(values)
    if n < 2:
        return None
    var, tail = np.var(values, ddof=1), (1 - level) / 2
    return float(np.sqrt((n - 1) * var / chi2.ppf(1 - tail, n - 1))), float(np.sqrt((n - 1) * var / chi2.ppf(tail, n - 1)))


def seed_replicates(folder: Path, results: dict) -> tuple[dict[str, dict[str, np.ndarray]], list[str]]:
    """Per scenario and method (leaderboard label): the UES bootstrap replicates of one run folder, rescored as
    the report scores it (`scoring_inputs`, the arguments `compare` passes); also one line per scenario saying
    whether they reproduce results.json's UES intervals (they do unless results.json is older than the code)."""
    run, known, resampler = scoring_inputs(folder)
    vanilla = run.named("vanilla") or "vanilla"
    base = run.named("base")
    out, checks = {}, []
    for scenario in (s for s in run.scenarios if s in FIGURES):
        oracle = run.named("oracle", scenario) or "oracle"
        entries = [m for m in run.models_for(scenario) if m.name in run.metrics]
        ues = scenario_ues(scenario, run.items, [m.name for m in entries], vanilla, oracle,
                           base if base in run.items else None, known, resampler, keep_samples=True)
        board = {r["name"]: r for r in results["leaderboards"].get(scenario, {}).get("rows", [])}
        key, same, total = f"ues_{scenario}", 0, 0
        for m in entries:
            row, samples = board.get(m.name, {}), ues[m.name].get("samples")
            ci = interval(samples["ues"]) if samples else None
            if row.get(f"{key}_ci_low") is None and ci is None:
                continue
            total += 1
            same += ci is not None and row.get(f"{key}_ci_low") is not None and bool(
                np.allclose(ci, (row[f"{key}_ci_low"], row[f"{key}_ci_high"]), rtol=0, atol=1e-9))
        checks.append(f"{scenario} {same}/{total}" + ("" if same == total else " (MISMATCH: results.json was built by other code)"))
        out[scenario] = {m.method or m.name: ues[m.name]["samples"]["ues"] for m in entries
                         if m.kind == "method" and "samples" in ues[m.name]}
    return out, checks


def sampling(per_seed: list[dict], replicates: list[dict], seeds: list[int], pairs: int) -> list[str]:
    """The section "patient sampling alone": per scenario, each method's within-seed sd of UES (mean over seeds
    of its replicates' sd) beside its between-seed sd, and the ranking's noise ceiling beside the between-seed taus."""
    lines = []
    for scenario in FIGURES:
        key = FIGURES[scenario][0]
        boards = [rows(r, scenario) for r in per_seed]
        seen = [rep.get(scenario, {}) for rep in replicates]
        methods = [m for m in seen[0] if all(m in s for s in seen)] if seen else []
        if not methods:
            continue
        lines += [f"{scenario}: UES sd per method over {len(seeds)} seeds (between: 95 % chi-square interval, normal spread assumed)",
                  "  " + f"{'method':<12}{'within-seed sd':>16}{'(per seed)':>22}{'between-seed sd':>17}{'[95 % interval]':>18}"]
        over = 0
        for m in methods:
            within = [replicate_sd(s[m]) for s in seen]
            mean_within = float(np.nanmean(within)) if np.isfinite(within).any() else float("nan")
            over += mean_within > SD_TARGET
            points = [b[m][key] for b in boards if m in b and b[m].get(key) is not None]
            between = float(np.std(points, ddof=1)) if len(points) > 1 else float("nan")
            ci = sd_interval(points)
            lines.append("  " + f"{m:<12}{mean_within:>16.3f}{'/'.join(f'{w:.3f}' for w in within):>22}{between:>17.3f}"
                         + (f"{f'[{ci[0]:.3f}, {ci[1]:.3f}]':>18}" if ci else f"{'–':>18}"))
        lines.append(f"  methods whose within-seed sd alone exceeds {SD_TARGET}: {over}/{len(methods)}")
        lines.append(f"  ranking noise ceiling: Kendall tau between the method rankings of two independent bootstrap replicates ({pairs} pairs)")
        for seed, s in zip(seeds, seen):
            matrix = np.array([s[m] for m in s])
            taus, usable = noise_ceiling(matrix, pairs)
            kept = taus[np.isfinite(taus)]
            shown = f"median {np.median(kept):.2f}, 5th percentile {np.percentile(kept, 5):.2f}" if kept.size else "undefined"
            lines.append(f"    seed {seed}: {shown} ({len(s)} methods, {kept.size} pairs of {usable} usable replicates)")
        lines.append("    between seeds (point UES): " + ", ".join(f"{seeds[i]} vs {seeds[j]} {tau:.2f}" for i, j, tau, _ in seed_taus(per_seed, scenario)))
        lines.append("")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--out", type=Path, default=Path("runs/seeds"))
    parser.add_argument("--methods", action="append", default=[], help="methods to run (repeat; `all`: every registered method; default: the run's defaults)")
    parser.add_argument("--targets", default="mimic", help="the method checked against issue 18's targets on every seed ('' for none)")
    parser.add_argument("--no-run", action="store_true", help="read the existing run folders (--out/seed-<s>) without running them")
    parser.add_argument("--pairs", type=int, default=200, help="pairs of bootstrap replicates for the ranking's noise ceiling")
    args = parser.parse_args()
    folders = [args.out / f"seed-{s}" for s in args.seeds]
    try:
        if args.no_run:
            per_seed = [read_seed(s, f) for s, f in zip(args.seeds, folders)]
        else:
            per_seed = [run_seed(s, args.preset, f, args.methods) for s, f in zip(args.seeds, folders)]
        rescored = [seed_replicates(f, r) for f, r in zip(folders, per_seed)]
    except MedforgetError as err:
        sys.exit(f"error: {err}")
    lines = []
    for scenario in ("privacy", "incorrect"):
        lines += table(per_seed, scenario) + ranking(per_seed, scenario, args.seeds) + [""]
    lines += oracle_auroc(per_seed, args.seeds)
    lines += ["", "patient sampling alone (bootstrap within each seed: the report's resamples of patients and facts)",
              "  the replicates reproduce results.json's UES intervals (rows that have one):"]
    lines += [f"    seed {s}: " + ", ".join(checks) for s, (_, checks) in zip(args.seeds, rescored)]
    lines += sampling(per_seed, [r for r, _ in rescored], args.seeds, args.pairs)
    if args.targets:
        lines += ([""] if lines[-1] else []) + targets(per_seed, args.seeds, args.targets)
    print("\n".join(lines))


if __name__ == "__main__":
    main()

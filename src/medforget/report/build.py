"""`build_report`: a run folder -> report.html, leaderboard.md and results.json beside it."""

from __future__ import annotations

import base64
import json
import math
import os
from pathlib import Path

from medforget.evaluate.bootstrap import Resampler, interval
from medforget.evaluate.compare import FORGET_QUALITY_SPLITS, REFUSAL_SPLITS, compare
from medforget.evaluate.references import reference_metrics, reference_records
from medforget.evaluate.robustness import robustness_figures
from medforget.evaluate.run import known_values
from medforget.evaluate.summary import membership_scores
from medforget.report import plots
from medforget.report.examples import build_examples
from medforget.report.intervals import Known, mcq_rate, model_intervals, rate_samples
from medforget.report.leaderboard import ROBUSTNESS_COLUMNS, SCENARIO_TITLES, columns_for, columns_json, leaderboard_rows, markdown
from medforget.report.page import render
from medforget.report.rundir import ModelEntry, Run, load_run


def json_safe(value: object) -> object:
    """Strict-JSON copy: NaN and infinities (an eval JSON may hold them) become None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def _write(path: Path, text: str) -> None:
    """Write through a temporary name, so a reader never sees half a report."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _membership_scores(run: Run, attack: str = "mia_min_k_pp") -> dict[str, tuple[list[float], list[float]]]:
    """Per model: the attack's scores on forget_privacy private items (members) and holdout ones (non-members),
    the same items `evaluate_model` scores its membership AUROC on."""
    return {entry.name: membership_scores(run.items.get(entry.name, []), attack) for entry in run.models}


def _add_references(run: Run, known: Known) -> None:
    """The degenerate reference models (`evaluate.references`), built on the vanilla model's items, as models
    of the run shared by every scenario, so each leaderboard shows what doing nothing useful scores."""
    vanilla = run.named("vanilla")
    if not vanilla or not run.items.get(vanilla):
        run.notes.append("no per-item records of the vanilla model: no reference models")
        return
    for name, records in reference_records(run.items[vanilla]).items():
        run.models.append(ModelEntry(name, "reference"))
        run.items[name] = records
        run.metrics[name] = reference_metrics(records, known)


def _split_errors(run: Run, models: list[ModelEntry], resampler: Resampler) -> dict[str, dict[str, tuple[float, float]]]:
    """Per model and split: the 95 % interval of its MCQ accuracy (the bar chart's error bars)."""
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for m in models:
        records = run.items.get(m.name, [])
        for split in dict.fromkeys(r["split"] for r in records):
            samples = rate_samples(records, mcq_rate(split), {}, resampler)
            if samples is not None and (ci := interval(samples)):
                out.setdefault(m.name, {})[split] = ci
    return out


def _figures(run: Run, scenario: str, rows: list[dict], resampler: Resampler) -> dict[str, str | None]:
    """The plots of one scenario's models (the privacy one where the run has it: membership is about patients),
    with 95 % intervals as error bars."""
    models = run.models_for(scenario)
    kinds = {m.name: m.kind for m in models}
    forget = "forget" if scenario != "incorrect" else "corrupted"
    points = [(r["model"], r["kind"], r[forget], r["retain"],
               (r.get(f"{forget}_ci_low"), r.get(f"{forget}_ci_high")), (r.get("retain_ci_low"), r.get("retain_ci_high")))
              for r in rows if r[forget] is not None and r["retain"] is not None]
    accuracy = {
        m.name: {s: v["mcq_acc"] for s, v in (run.metrics[m.name].get("splits") or {}).items() if v.get("mcq_acc") is not None}
        for m in models if m.name in run.metrics
    }
    scores = _membership_scores(run)
    return {
        "tradeoff": plots.tradeoff_plot(points),
        "splits": plots.split_bars(accuracy, kinds, _split_errors(run, models, resampler)),
        "roc": plots.roc_plot({n: scores[n] for n in kinds}, kinds),
        "protection": _frontier_png(run.folder),
    }


def _frontier_png(folder: Path) -> str | None:
    """The leak-against-PSNR plot of `benchmarks/protect_frontier.py RUN` (RUN/protect_frontier/frontier.png), if run."""
    path = folder / "protect_frontier" / "frontier.png"
    return base64.b64encode(path.read_bytes()).decode("ascii") if path.is_file() else None


def _grouped_notes(comparison: dict[str, dict]) -> list[str]:
    """Comparison notes once each, with the models they concern ("ga, npo: no oracle ...")."""
    by_note: dict[str, list[str]] = {}
    for name, cmp in comparison.items():
        for note in cmp["notes"]:
            by_note.setdefault(note, []).append(name)
    return [f"{', '.join(names)}: {note}" for note, names in by_note.items()]


def _ues_left_out(vanilla: dict, scenario: str) -> list[str]:
    """The splits every model's UES leaves out, and why (one decision per run, read from vanilla's entry)."""
    out = []
    for s, ues in (vanilla.get("ues") or {}).items():
        out += [f"{scenario}: UES {s} leaves out {split} for every model: {reason}" for split, reason in ues.get("skipped", [])
                if "for this model" not in reason]
        if ues.get("ues") is None and ues.get("kept") is not None:
            out.append(f"{scenario}: UES {s} is undefined: no forget split (or no utility split) shows a clear gap")
    return out


def _meta(run: Run) -> list[tuple[str, str]]:
    info = run.info
    meta = [(k, str(info[k])) for k in ("preset", "seed") if info.get(k) is not None]
    meta.append(("scenarios", ", ".join(run.scenarios)))
    if info.get("methods"):
        meta.append(("methods", ", ".join(info["methods"])))
    request = (run.bench.meta.get("forget_request") if run.bench is not None else None) or {}
    if request:
        meta.append(("forget request", f"{request['level']}: {request['rows']} rows of {len(request.get('affected_patients', []))} "
                                       f"patient(s), {len(request.get('sibling_patients', []))} sibling patient(s)"))
    hashes = {m.get("benchmark_hash") for m in run.metrics.values()} - {None}
    if hashes:
        meta.append(("benchmark", ", ".join(sorted(h[:12] for h in hashes))))
    return meta


def _shown_columns(columns: list, rows: list[dict]) -> list:
    """The columns, less robustness columns no row has a figure for (a run without its robustness stages)."""
    robust = {c.key for cols in ROBUSTNESS_COLUMNS.values() for c in cols}
    return [c for c in columns if c.key not in robust or any(r.get(c.key) is not None for r in rows)]


def scoring_inputs(run_dir: Path | str) -> tuple[Run, Known, Resampler]:
    """The run as the report scores it: its models plus the reference ones, the benchmark's known values, and
    the one set of cluster resamples every figure of the report shares (so a study that rescores the run, such
    as benchmarks/seed_stability.py, reproduces the report's intervals)."""
    run = load_run(run_dir)
    known = known_values(run.bench) if run.bench is not None else {}
    _add_references(run, known)
    return run, known, Resampler.for_records(*run.items.values(), *run.robust.values())


def build_report(run_dir: Path | str, reveal: bool = False) -> dict[str, Path]:
    """Write report.html, leaderboard.md and results.json into `run_dir`; returns their paths by kind.

    One leaderboard per scenario the run unlearned, each model judged against its own scenario's oracle.
    Missing models, evaluations or benchmark never stop the report: it shows what exists and lists what
    is missing. `reveal=True` quotes private values unredacted (for the data owner only).
    """
    run, known, resampler = scoring_inputs(run_dir)
    vanilla = run.named("vanilla") or "vanilla"
    boards, comparisons, notes = {}, {}, list(run.notes)
    request = (run.bench.meta.get("forget_request") if run.bench is not None else None) or None
    siblings = set((request or {}).get("sibling_patients", []))
    if request is None:
        notes.append("no forget request in benchmark.json (a benchmark generated before forget levels): the sibling columns are absent")
    elif not siblings:
        notes.append(f"the forget request (level {request['level']}) has no siblings: the sibling columns are absent")
    for scenario in run.scenarios:
        oracle = run.named("oracle", scenario) or "oracle"
        names = [m.name for m in run.models_for(scenario)]
        comparison = compare({n: run.metrics[n] for n in names if n in run.metrics}, run.items, vanilla=vanilla,
                             oracle=oracle, scenario=scenario, base=run.named("base"), known=known, resampler=resampler)
        comparisons[scenario] = comparison
        intervals = {n: model_intervals(run.items.get(n, []), run.items.get(oracle, []), known, resampler, siblings) for n in names}
        robust = {n: robustness_figures(run.robust.get(n, []), run.items.get(n, []), scenario, resampler) for n in names}
        rows = leaderboard_rows(run, scenario, comparison, intervals, robust)
        boards[scenario] = (rows, _shown_columns(columns_for(scenario), rows))
        notes += [f"{scenario}: {n}" for n in _grouped_notes(comparison)]
        notes += _ues_left_out(comparison.get(vanilla, {}), scenario)
    first = run.scenarios[0]
    privacy = next((s for s in run.scenarios if s in ("privacy", "both")), None)

    shown = [(m.name, m.kind) for m in run.models if m.kind == "vanilla"]
    shown += [(m.name, m.kind) for m in run.models_for(privacy or first) if m.kind == "method"]
    shown += [(m.name, m.kind) for m in run.models_for(privacy or first) if m.kind == "oracle"]
    examples = build_examples(run.bench, run.items, shown, reveal=reveal) if run.bench is not None and privacy else []
    details = {
        scenario: [
            {"name": m.name, "label": m.method or m.name, "kind": m.kind, "cmp": comparisons[scenario][m.name],
             "auroc": {a: v["auroc"] for a, v in (run.metrics[m.name].get("membership") or {}).items()}}
            for m in run.models_for(scenario) if m.name in comparisons[scenario]
        ]
        for scenario in run.scenarios
    }
    html = render(
        title=run.info.get("name") or run.folder.name, meta=_meta(run), reveal=reveal, notes=notes,
        boards=[{"scenario": s, "title": SCENARIO_TITLES.get(s, s), "rows": rows, "columns": cols,
                 "ues": [u for u in ("privacy", "incorrect") if any(c.key == f"ues_{u}" for c in cols)],
                 "fq": FORGET_QUALITY_SPLITS[s], "details": details[s]} for s, (rows, cols) in boards.items()],
        plots=_figures(run, privacy or first, boards[privacy or first][0], resampler),
        privacy_details=details.get(privacy, []) if privacy else [],
        attacks=sorted({a for d in details.get(privacy, []) for a in d["auroc"]}) if privacy else [],
        refusal_splits=REFUSAL_SPLITS, examples=examples, folder=str(run.folder),
        examples_missing="No benchmark or no generated answers on forget_privacy, so no examples.",
    )
    results = {
        "run": run.info, "notes": notes, "forget_request": request,
        "models": {m.name: {"kind": m.kind, "method": m.method, "scenario": m.scenario, "seconds": m.seconds, "path": m.path,
                            "metrics": run.metrics.get(m.name), "robustness": run.robust_info.get(m.name)} for m in run.models},
        "comparison": comparisons,
        "leaderboards": {s: {"columns": columns_json(cols), "rows": rows} for s, (rows, cols) in boards.items()},
    }
    paths = {"html": run.folder / "report.html", "markdown": run.folder / "leaderboard.md",
             "json": run.folder / "results.json"}
    _write(paths["html"], html)
    _write(paths["markdown"], markdown(run, boards, notes))
    _write(paths["json"], json.dumps(json_safe(results), indent=2, allow_nan=False) + "\n")
    return paths

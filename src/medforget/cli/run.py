"""`run`: the whole benchmark pipeline, with its leaderboard printed at the end."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from medforget.cli.shared import TrainProgress, console, err, quiet_transformers, user_errors
from medforget.errors import MedforgetError


def run(
    out: Path = typer.Option(..., "--out", help="Run folder (created, or resumed when it exists)."),
    preset: Optional[str] = typer.Option(None, help="smoke, demo or standard (default demo)."),
    methods: list[str] = typer.Option([], "--methods", help="Unlearning methods to compare (repeat; 'all': every registered method; default: every registered method; with --data, those that need no generated world)."),
    scenarios: list[str] = typer.Option([], "--scenario", help="privacy, incorrect, or both (one model forgets both sets); repeat for several (default: privacy and incorrect, each against its own oracle)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Stages run side by side, each in its own process (default 2 on a machine with 2 or more cores; 1 runs them one after another with progress bars)."),
    model: Optional[str] = typer.Option(None, "--model", help="Fine-tune this checkpoint (path or hub id) instead of the embedded default."),
    seed: Optional[int] = typer.Option(None, help="Seed of the benchmark and of every training run (default 0)."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML file with the same settings; options given here win."),
    force: list[str] = typer.Option([], "--force", help="Redo this stage and every stage after it (generate, init, pretrain, vanilla, oracle, unlearn, eval, robust, report)."),
    robustness: Optional[bool] = typer.Option(None, "--robustness/--no-robustness", help="Probe each oracle and unlearned model by relearning, quantisation, perturbed scans and paraphrases (default: on, off for smoke)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Your dataset folder (from `medforget import`): audit --model, unlearn it with each method, audit again."),
    overrides: list[str] = typer.Option([], "--set", help="With --data: key=value for every method (as `unlearn --set`)."),
    identity_cue: Optional[str] = typer.Option(None, "--identity-cue", help="What tells patients apart in the world's scans: marker (default) or anatomy (as `generate --identity-cue`)."),
    oracle: Optional[str] = typer.Option(None, "--oracle", help="With --data: your model retrained without the forget request; adds forget quality, PrivLeak and the leak and refusal gaps against it."),
) -> None:
    """Run the whole benchmark: generate, build and pretrain the base model, fine-tune the vanilla model,
    train the retrain oracle, unlearn with every method, evaluate every model, and write the report.
    With --data and --model: audit -> unlearn with each method -> audit again -> summary, on your data."""
    from medforget.pipeline import RunConfig, method_list, run_pipeline

    quiet_transformers()
    if data is not None:
        with user_errors():
            if model is None:
                raise MedforgetError("--data needs --model: the checkpoint to audit and unlearn")
            _run_on_data(data, model, method_list(methods or None, world=False), out, overrides, force, workers or 1, oracle)
        return
    if oracle is not None:
        with user_errors():
            raise MedforgetError("--oracle goes with --data: the synthetic run trains its own oracle")
    with user_errors():
        settings = {"preset": preset, "scenarios": scenarios or None, "model": model, "seed": seed, "methods": methods or None,
                    "workers": workers, "robustness": robustness, "identity_cue": identity_cue}
        if config is not None:
            cfg = RunConfig.from_yaml(config, **settings)
        else:
            cfg = RunConfig(**{k: v for k, v in settings.items() if v is not None})
        bars: dict[str, TrainProgress] = {}

        def train_report(stage: str):
            bar = TrainProgress(stage)

            def report(info: dict) -> None:
                if stage not in bars:
                    bars[stage] = bar.__enter__()
                bar(info)
                if info["step"] >= info["total"]:
                    bars.pop(stage).__exit__(None, None, None)

            return report

        began = time.perf_counter()
        runner = run_pipeline(cfg, out, force=force, log=lambda line: err.print(line), train_report=train_report)
    _print_leaderboard(out)
    console.print(f"{len(runner.ran)} stage(s) run, {len(runner.skipped)} up to date, {time.perf_counter() - began:.0f} s; "
                  f"report: {out / 'report.html'}")


def _run_on_data(data: Path, model: str, methods: list[str], out: Path, overrides: list[str], force: list[str], workers: int,
                 oracle: str | None) -> None:
    from medforget.audit.pipeline import SUMMARY_JSON, SUMMARY_MD, figure, run_on_data

    began = time.perf_counter()
    runner = run_on_data(data, model, methods, out, settings=overrides, force=force, workers=workers, oracle=oracle,
                         log=lambda line: err.print(line))
    summary = json.loads((out / "summary" / SUMMARY_JSON).read_text())
    table = Table(title=f"audit before and after unlearning ({out})")
    columns = list(summary["rows"][0])
    for c in columns:
        table.add_column(c, justify="left" if c == "model" else "right")
    for row in summary["rows"]:
        table.add_row(*(figure(c, row[c]) for c in columns))
    console.print(table)
    for key, why in summary.get("absent", {}).items():
        console.print(f"absent: {key}: {why}")
    console.print(f"{len(runner.ran)} stage(s) run, {len(runner.skipped)} up to date, {time.perf_counter() - began:.0f} s; "
                  f"audits: {out / 'audits'}; summary: {out / 'summary' / SUMMARY_MD}; report: {out / 'summary' / 'report.html'}")


SUMMARY_COLUMNS = ("model", "forget", "test_forget", "leak", "mia_auroc", "corrupted", "true", "test_corrupted", "neighbour",
                   "retain", "test_retain", "general", "ues_privacy", "ues_incorrect", "seconds")


def _print_leaderboard(run_dir: Path) -> None:
    """The short summary table of each scenario of a run (the full ones are in leaderboard.md and report.html)."""
    boards = json.loads((run_dir / "results.json").read_text()).get("leaderboards", {})
    for scenario, board in boards.items():
        headers = {c["key"]: c["header"] for c in board.get("columns", [])}
        rows = board.get("rows", [])
        keys = [k for k in SUMMARY_COLUMNS if k in headers and any(r.get(k) is not None for r in rows)]
        table = Table(title=f"{scenario} leaderboard ({run_dir})")
        for k in keys:
            table.add_column(headers[k], justify="left" if k == "model" else "right")
        for row in rows:
            table.add_row(*("-" if row.get(k) is None else f"{row[k]:.3f}" if isinstance(row[k], float) and k != "seconds"
                            else f"{row[k]:.0f}" if k == "seconds" else str(row[k]) for k in keys))
        console.print(table)

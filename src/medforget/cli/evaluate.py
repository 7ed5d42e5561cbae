"""Scoring commands: `evaluate` (benchmark metrics) and `audit` (memorised patient data, any checkpoint)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from medforget.cli.shared import console, err, progress_bar, quiet_transformers, task_progress, user_errors
from medforget.errors import MedforgetError


def evaluate(
    model: str = typer.Option(..., "--model", help="Model folder or hub id."),
    bench: Path = typer.Option(..., "--bench", help="Benchmark folder."),
    out: Path = typer.Option(..., "--out", help="Metrics JSON; per-item outputs go beside it as .parquet."),
    splits: list[str] = typer.Option([], "--splits", help="Splits to evaluate (repeat the option); default: all evaluation splits."),
    batch_size: int = typer.Option(64, "--batch-size", help="Sequences per forward pass."),
    max_new_tokens: int = typer.Option(24, help="Longest generated answer."),
    min_k: float = typer.Option(0.2, "--min-k", help="k of the Min-K% and Min-K%++ attacks."),
    oracle: Optional[str] = typer.Option(None, "--oracle", help="A model retrained without the forget set (folder, adapter folder or hub id): adds forget quality, PrivLeak and refusal gaps against it."),
) -> None:
    """Score a model on the benchmark: accuracy, leak rates, refusals, general capability, membership attacks."""
    from medforget.evaluate.run import DEFAULT_SPLITS, evaluate_model, known_values, oracle_comparison, write_results
    from medforget.world.storage import load_benchmark

    quiet_transformers()
    with user_errors():
        if not 0 < min_k <= 1:
            raise MedforgetError("--min-k must be in (0, 1]")
        options = {"batch_size": batch_size, "max_new_tokens": max_new_tokens, "min_k": min_k}
        with progress_bar() as bar:
            metrics, records = evaluate_model(model, bench, splits or DEFAULT_SPLITS, progress=task_progress(bar, "evaluating"), **options)
            if oracle is not None:
                theirs, their_records = evaluate_model(oracle, bench, splits or DEFAULT_SPLITS,
                                                       progress=task_progress(bar, "evaluating the oracle on"), **options)
                metrics["oracle"] = oracle_comparison(metrics, records, theirs, their_records, known_values(load_benchmark(bench)))
        json_path, items_path = write_results(metrics, records, out)
    table = Table(title=f"{model} ({metrics['seconds']:.0f} s)")
    for col in ("split", "items", "MCQ acc", "chance", "leak (exact)", "refusal"):
        table.add_column(col, justify="right" if col != "split" else "left")
    for split, m in metrics["splits"].items():
        fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        table.add_row(split, str(m["n"]), fmt(m.get("mcq_acc")), fmt(m.get("mcq_chance")), fmt(m.get("leak_exact")), fmt(m.get("refusal_rate")))
    console.print(table)
    if oracle is not None:
        _print_oracle(metrics["oracle"])
    if metrics["skipped"]:
        console.print(f"skipped (not in {bench}): {', '.join(metrics['skipped'])}")
    console.print(f"metrics: {json_path}; per-item outputs: {items_path}")


def _print_oracle(cmp: dict) -> None:
    fmt = lambda v: "absent" if v is None else f"{v:.3g}"  # noqa: E731
    quality = ", ".join(f"{split} {fmt(v)}" for split, v in cmp["forget_quality"].items())
    leak = ", ".join(f"{attack} {fmt(v)}" for attack, v in cmp["privleak"].items()) or "absent"
    gaps = ", ".join(f"{split} {v:+.3f}" for split, v in cmp["refusal"].get("oracle_gap", {}).items()) or "absent"
    console.print(f"against the oracle {cmp['oracle']}: forget quality (KS p-value; near 1 looks like the oracle) {quality}; "
                  f"PrivLeak {leak}; refusal gap {gaps}")
    for note in cmp["notes"]:
        console.print(f"  {note}")


def audit(
    model: str = typer.Option(..., "--model", help="Any image-text-to-text checkpoint: folder, LoRA adapter folder or hub id."),
    data: Path = typer.Option(..., "--data", help="Dataset folder (from `medforget import` or `generate`)."),
    out: Path = typer.Option(..., "--out", help="Folder for audit.json and audit.html."),
    forget: Optional[Path] = typer.Option(None, "--forget", help="Forget request to audit (default: the folder's own; none: every trained patient)."),
    reveal: bool = typer.Option(False, help="Quote private values instead of redacting them (never share the result)."),
    fail_above: Optional[float] = typer.Option(None, "--fail-above", help="Exit 1 when the requested items' exact leak rate exceeds this (release gate)."),
    batch_size: int = typer.Option(32, "--batch-size", help="Sequences per forward pass."),
    max_new_tokens: int = typer.Option(24, help="Longest generated answer."),
    overwrite: bool = typer.Option(False, help="Replace an existing audit folder."),
) -> None:
    """Audit a model for memorised patient data: leaks, membership against non-members, patients ranked by risk."""
    from medforget.audit.page import write_audit
    from medforget.audit.score import run_audit

    quiet_transformers()
    with user_errors():
        if fail_above is not None and not 0 <= fail_above <= 1:
            raise MedforgetError("--fail-above must be a rate in [0, 1]")
        with progress_bar() as bar:
            result = run_audit(model, data, forget, reveal=reveal, batch_size=batch_size, max_new_tokens=max_new_tokens,
                               progress=task_progress(bar, "auditing"))
        json_path, html_path = write_audit(result, out, overwrite=overwrite)
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    table = Table(title=f"audit of {model} (request level {result['request']['level']})")
    for col in ("group", "patients", "items", "leak (exact)", "leak (partial)", "with image", "without image", "refusal"):
        table.add_column(col, justify="left" if col == "group" else "right")
    for name, g in result["groups"].items():
        table.add_row(name, str(g["patients"]), str(g["items"]), fmt(g["leak_exact"]), fmt(g["leak_partial"]),
                      fmt(g["leak_exact_with_image"]), fmt(g["leak_exact_without_image"]), fmt(g["refusal_rate"]))
    console.print(table)
    auroc = result["criterion"]["auroc"]
    console.print(f"forgotten vs non-member membership AUROC (Min-K%++): {fmt(auroc)} (target 0.5); "
                  f"{len(result['absent'])} figure(s) absent, reasons in {json_path}; page: {html_path}")
    leak = result["groups"]["forget"]["leak_exact"]
    if fail_above is not None and leak is not None and leak > fail_above:
        err.print(f"[bold red]audit failed[/]: the forget request's leak rate {leak:.3f} exceeds --fail-above {fail_above:g}")
        raise typer.Exit(1)

"""`medforget report RUN_DIR`: report.html, leaderboard.md and results.json of a run.

The report's builder is imported when the command runs, so the CLI starts without matplotlib or jinja2."""

from __future__ import annotations

from pathlib import Path

import typer

from medforget.cli.shared import console, user_errors


def report(
    run_dir: Path = typer.Argument(..., help="Run folder (with run.json, eval/ and bench/)."),
    reveal: bool = typer.Option(False, help="Quote private values instead of redacting them (never share the result)."),
) -> None:
    """Write report.html, leaderboard.md and results.json into a run folder."""
    from medforget.report.build import build_report

    with user_errors():
        paths = build_report(run_dir, reveal=reveal)
    for path in paths.values():
        console.print(f"wrote {path}")

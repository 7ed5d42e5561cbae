"""`medforget report RUN_DIR`, registered on the main typer app by `report_command(app)`.

Kept apart from `build` so registering the command imports neither matplotlib nor jinja2: the CLI
starts fast and pays for the report only when it runs.
"""

from __future__ import annotations

from pathlib import Path

import typer


def report_command(app: typer.Typer) -> None:
    """Register `report` on `app`."""

    @app.command("report")
    def report(
        run_dir: Path = typer.Argument(..., help="Run folder (with run.json, eval/ and bench/)."),
        reveal: bool = typer.Option(False, help="Quote private values instead of redacting them (never share the result)."),
    ) -> None:
        """Write report.html, leaderboard.md and results.json into a run folder."""
        from medforget.cli import console, user_errors
        from medforget.report.build import build_report

        with user_errors():
            paths = build_report(run_dir, reveal=reveal)
        for path in paths.values():
            console.print(f"wrote {path}")

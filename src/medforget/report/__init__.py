"""Reports of a run folder: report.html, leaderboard.md and results.json (see docs/report.md).

`build_report` is loaded on first use: importing this package must not pull in matplotlib and jinja2.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_report"]


def __getattr__(name: str) -> Any:
    if name == "build_report":
        from medforget.report.build import build_report

        return build_report
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

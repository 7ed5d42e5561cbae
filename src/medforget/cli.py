"""The `medforget` command line. Each command is a thin wrapper: parse, call the library, print."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

import typer  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: E402
from rich.table import Table  # noqa: E402

from medforget.errors import MedforgetError  # noqa: E402

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="Find, remove and prove the removal of private and incorrect knowledge in biomedical VLMs.",
)
console = Console()
err = Console(stderr=True)


@contextmanager
def user_errors() -> Iterator[None]:
    """A user mistake becomes one red line and exit code 2, never a traceback."""
    try:
        yield
    except MedforgetError as e:
        err.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err, transient=True, disable=not err.is_terminal,
    )


@app.command()
def generate(
    out: Path = typer.Option(..., "--out", help="Folder to write the benchmark into."),
    preset: str = typer.Option("demo", help="World size: smoke (tests), demo (CPU, minutes), standard (GPU)."),
    seed: int = typer.Option(0, help="Everything is derived from this seed."),
    forget_ratio: float = typer.Option(0.1, "--forget-ratio", help="Fraction of fine-tuned patients to forget, in (0, 0.5]."),
    overwrite: bool = typer.Option(False, help="Replace an existing, non-empty output folder."),
) -> None:
    """Generate the synthetic benchmark: patients, scans, facts, questions and splits."""
    from medforget.world.build import generate as build
    from medforget.world.config import preset_config

    with user_errors():
        cfg = preset_config(preset)
        with progress_bar() as bar:
            task = bar.add_task("rendering scans", total=None)
            meta = build(cfg, seed, forget_ratio, out, overwrite=overwrite,
                         progress=lambda stage, done, total: bar.update(task, completed=done, total=total))
    print_summary(meta, out)


def print_summary(meta: dict, out: Path) -> None:
    table = Table(title=f"benchmark {meta['preset']} (seed {meta['seed']}) -> {out}")
    table.add_column("split")
    table.add_column("rows", justify="right")
    for name, count in meta["counts"].items():
        table.add_row(name, str(count))
    console.print(table)
    patients = ", ".join(f"{k} {v}" for k, v in meta["patients"].items())
    console.print(f"patients: {patients}; forgotten: {len(meta['forget_patients'])}; content hash {meta['content_hash'][:16]}")


@app.command()
def validate(folder: Path = typer.Argument(..., help="Benchmark folder.")) -> None:
    """Check a benchmark's schema, images and split leakage."""
    from medforget.world.validate import validate as run_checks

    with user_errors():
        problems = run_checks(folder)
    if problems:
        for p in problems:
            err.print(f"[red]✗[/] {p}", highlight=False, soft_wrap=True)
        err.print(f"[bold red]{folder} is invalid[/]: {len(problems)} problem(s)")
        raise typer.Exit(1)
    console.print(f"[green]✓[/] {folder} is valid")


@app.command()
def show(
    folder: Path = typer.Argument(..., help="Benchmark folder."),
    split: str = typer.Option("train", help="Split to sample from."),
    n: int = typer.Option(8, help="How many rows to print."),
    seed: int = typer.Option(0, help="Which rows to sample."),
    sheet: Path = typer.Option(Path("contact_sheet.png"), help="Where to write the contact sheet PNG."),
    reveal: bool = typer.Option(False, help="Print private values instead of redacting them."),
) -> None:
    """Print sample rows and write a contact sheet of their scans."""
    from medforget.world.show import contact_sheet, sample_rows
    from medforget.world.storage import load_benchmark

    with user_errors():
        if n < 1:
            raise MedforgetError("--n must be at least 1")
        bench = load_benchmark(folder)
        rows = sample_rows(bench, split, n, seed=seed, reveal=reveal)
        table = Table(title=f"{split}: {len(rows)} of {len(bench[split])} rows")
        for col in ("id", "task", "question", "answer", "flags"):
            table.add_column(col, overflow="fold")
        for r in rows:
            question = r["question"] + ("".join(f"\n {chr(65 + i)}. {o}" for i, o in enumerate(r["options"])))
            flags = " ".join(f for f, on in (("private", r["is_private"]), ("incorrect", r["is_incorrect"])) if on)
            table.add_row(r["id"], r["task"], question, r["answer"], flags)
        console.print(table)
        count = contact_sheet(bench, rows, sheet)
    console.print(f"contact sheet of {count} scans written to {sheet}")


def main() -> None:  # pragma: no cover - console entry for `python -m medforget.cli`
    app(prog_name="medforget")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

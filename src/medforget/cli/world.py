"""World and dataset commands: `generate`, `import`, `validate`, `show`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from medforget.cli.shared import console, err, progress_bar, user_errors
from medforget.errors import MedforgetError


def generate(
    out: Path = typer.Option(..., "--out", help="Folder to write the benchmark into."),
    preset: str = typer.Option("demo", help="World size: smoke (tests), demo (CPU, minutes), standard (GPU)."),
    seed: int = typer.Option(0, help="Everything is derived from this seed."),
    forget_ratio: Optional[float] = typer.Option(None, "--forget-ratio", help="Fraction of fine-tuned patients to forget, in (0, 0.5] (default: the preset's, 0.1)."),
    forget_level: str = typer.Option("patient", "--forget-level", help="What a forget request removes: patient (whole records), scan (the items of one scan each), field (one private detail each), hospital (every patient of one hospital)."),
    identity_cue: str = typer.Option("marker", "--identity-cue", help="What tells patients apart in their scans: marker (an implanted metal marker) or anatomy (faint anatomical traits only)."),
    overwrite: bool = typer.Option(False, help="Replace an existing, non-empty output folder."),
) -> None:
    """Generate the synthetic benchmark: patients, scans, facts, questions and splits."""
    from medforget.world.build import generate as build
    from medforget.world.config import default_forget_ratio, preset_config

    with user_errors():
        cfg = preset_config(preset).with_overrides(identity_cue=identity_cue)
        forget_ratio = default_forget_ratio(preset) if forget_ratio is None else forget_ratio
        with progress_bar() as bar:
            task = bar.add_task("rendering scans", total=None)
            meta = build(cfg, seed, forget_ratio, out, overwrite=overwrite, forget_level=forget_level,
                         progress=lambda stage, done, total: bar.update(task, completed=done, total=total))
    print_summary(meta, out)


def counts_table(title: str, counts: dict[str, int]) -> Table:
    table = Table(title=title)
    table.add_column("split")
    table.add_column("rows", justify="right")
    for name, count in counts.items():
        table.add_row(name, str(count))
    return table


def print_summary(meta: dict, out: Path) -> None:
    console.print(counts_table(f"benchmark {meta['preset']} (seed {meta['seed']}) -> {out}", meta["counts"]))
    patients = ", ".join(f"{k} {v}" for k, v in meta["patients"].items())
    console.print(f"patients: {patients}; forgotten: {len(meta['forget_patients'])}; content hash {meta['content_hash'][:16]}")


def import_cmd(
    fmt: str = typer.Argument(..., metavar="FORMAT", help="records, dicom, mllmu, clear or medforget (see docs/import.md)."),
    src: Path = typer.Argument(..., help="The records file, DICOM folder or parquet file/folder to import."),
    out: Path = typer.Option(..., "--out", help="Dataset folder to write."),
    forget: Optional[Path] = typer.Option(None, "--forget", help="Forget request: patient ids one a line, or JSON with patients, studies, fields, institutions."),
    nonmembers: list[Path] = typer.Option([], "--nonmembers", help="Records (same format) of people the model was never trained on; repeat the option."),
    overwrite: bool = typer.Option(False, help="Replace an existing, non-empty output folder."),
) -> None:
    """Import your own data (or a published benchmark) as a dataset folder every command reads."""
    from medforget.importers import import_dataset

    with user_errors():
        meta = import_dataset(fmt, src, out, forget=forget, nonmembers=nonmembers, overwrite=overwrite)
    console.print(counts_table(f"imported {fmt} {src} -> {out}", meta["counts"]))
    request = meta["forget_request"]
    console.print(f"forget request: level {request['level']}, {request['rows']} row(s) of {len(request['affected_patients'])} "
                  f"patient(s), {len(request['sibling_patients'])} sibling patient(s); content hash {meta['content_hash'][:16]}")


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

"""What every command shares: the consoles, one-line user errors, progress bars, quiet transformers."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from medforget.errors import MedforgetError

console = Console(width=None if sys.stdout.isatty() else 160)  # logs and pipes get whole tables
err = Console(stderr=True)
EPOCHS = typer.Option(None, help="Epochs (default: the preset's; given alone, it replaces a preset's step limit).")
LR = typer.Option(None, "--lr", help="Peak learning rate (default: the preset's).")
BATCH = typer.Option(None, "--batch-size", help="Batch size per process (default: the preset's).")
ACCUM = typer.Option(None, "--grad-accum", help="Gradient accumulation steps.")
STEPS = typer.Option(None, "--max-steps", help="Stop after this many optimizer steps (wins over --epochs).")
LORA = typer.Option(0, "--lora-r", help="Train LoRA adapters of this rank instead of all weights (0: full fine-tuning).")
SEED = typer.Option(None, "--seed", help="Training seed (data order, augmentation).")
OVERWRITE = typer.Option(False, help="Replace a finished model in the output folder.")


@contextmanager
def user_errors() -> Iterator[None]:
    """A user mistake becomes one red line and exit code 2, never a traceback."""
    try:
        yield
    except MedforgetError as e:
        err.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def task_progress(bar: Progress, verb: str):
    """`progress(name, done, total)` for work in named parts (splits, groups): one bar per part."""
    tasks: dict[str, object] = {}

    def progress(name: str, done: int, total: int) -> None:
        if name not in tasks:
            tasks[name] = bar.add_task(f"{verb} {name}", total=total)
        bar.update(tasks[name], completed=done)

    return progress


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err, transient=True, disable=not err.is_terminal,
    )


def finished_stages(began: float) -> Callable[[str, int, int], None]:
    """A (what, done, total) progress callback for the benchmark scripts: one stderr line per finished stage,
    with the seconds since `began` (a log, where a transient bar would leave nothing)."""

    def report(what: str, done: int, total: int) -> None:
        if done == total:
            print(f"  {what}: {done}/{total} ({time.perf_counter() - began:.0f} s)", file=sys.stderr, flush=True)

    return report


def quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


class TrainProgress:
    """Rich progress bar with loss and samples/s; plain lines every 10 % when output is not a terminal."""

    def __init__(self, description: str) -> None:
        self.description, self.bar, self.task, self.last_tenth = description, None, None, -1

    def __enter__(self) -> "TrainProgress":
        if err.is_terminal:
            self.bar = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]:.4f}  {task.fields[speed]:.0f} samples/s"), TimeElapsedColumn(),
                console=err, transient=True,
            )
            self.bar.__enter__()
            self.task = self.bar.add_task(self.description, total=None, loss=float("nan"), speed=0.0)
        return self

    def __call__(self, info: dict) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=info["step"], total=info["total"], loss=info["loss"], speed=info["samples_per_s"])
            return
        tenth = info["step"] * 10 // info["total"]
        if tenth != self.last_tenth:
            self.last_tenth = tenth
            err.print(f"{self.description}: step {info['step']}/{info['total']} loss {info['loss']:.4f} "
                      f"{info['samples_per_s']:.0f} samples/s", highlight=False)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

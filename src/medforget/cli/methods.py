"""Unlearning commands: `unlearn` and `methods`."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer
from rich.table import Table

from medforget.cli.shared import TrainProgress, console, quiet_transformers, user_errors


class Scenario(str, Enum):
    privacy = "privacy"
    incorrect = "incorrect"
    both = "both"


def unlearn_command(
    model: str = typer.Option(..., "--model", help="Model: a folder fine-tuned by `medforget finetune`, any other model folder, a LoRA adapter folder or a hub id (training options then from --set or the method's defaults)."),
    bench: Path = typer.Option(..., "--bench", help="Dataset folder the model was trained on (generated or imported)."),
    method: str = typer.Option(..., "--method", help="Unlearning method (list them with `medforget methods`)."),
    scenario: Scenario = typer.Option(..., "--scenario", help="What to forget: privacy, incorrect or both forget splits."),
    out: Path = typer.Option(..., "--out", help="Folder for the unlearned model."),
    overrides: list[str] = typer.Option([], "--set", help="key=value: a method hyperparameter or epochs, lr, batch_size, grad_accum, max_steps, seed, lora_r (repeat the option)."),
    overwrite: bool = typer.Option(False, help="Replace a finished output folder."),
) -> None:
    """Unlearn a scenario's forget set from a fine-tuned model with one method."""
    from medforget.methods.unlearn import unlearn

    quiet_transformers()
    with user_errors():
        with TrainProgress(f"{method} ({scenario.value})") as progress:
            record = unlearn(model, bench, method, scenario.value, out, overrides, progress, overwrite=overwrite)
    final = "n/a" if record.get("final_loss") is None else f"{record['final_loss']:.4f}"
    console.print(f"{method} on {scenario.value}: {record['forget_rows']} forget rows, {record['steps']} steps in "
                  f"{record['seconds']:.0f} s, final loss {final} -> {out}")


def methods_command() -> None:
    """List the unlearning methods with their hyperparameters, types and defaults."""
    from medforget.methods.registry import all_methods, param_defaults, param_types

    table = Table(title="unlearning methods (set hyperparameters with --set key=value)")
    for column in ("method", "what it does", "hyperparameters", "needs", "default training"):
        table.add_column(column, overflow="fold")
    for method in all_methods():
        types, defaults = param_types(method), param_defaults(method)
        params = "\n".join(f"{key}: {kind.__name__} = {defaults[key]!r}" for key, kind in types.items()) or "-"
        needs = ", ".join(name for name, on in (("retain", method.needs_retain), ("reference", method.needs_reference)) if on) or "-"
        cfg = method.train_defaults
        training = "as the fine-tuned model" if cfg is None else "none (training-free)" if method.training_free else (
            f"epochs {cfg.epochs:g}, lr {cfg.lr:g}, batch {cfg.batch_size}" + (f", LoRA r {cfg.lora.r}" if cfg.lora else ""))
        table.add_row(method.name, method.summary, params, needs, training)
    console.print(table)

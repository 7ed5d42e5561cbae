"""Training commands: `init-model`, `pretrain`, `finetune`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from medforget.cli.shared import (
    ACCUM, BATCH, EPOCHS, LORA, LR, OVERWRITE, SEED, STEPS, TrainProgress, console, quiet_transformers, user_errors,
)


def _train_config(bench: Path, stage: str, **overrides):
    from medforget.models.lora import LoraSettings
    from medforget.train.config import stage_config
    from medforget.world.storage import read_meta

    lora_r = overrides.pop("lora_r")
    cfg = stage_config(read_meta(bench)["preset"], stage).with_overrides(**overrides)
    return cfg.with_overrides(lora=LoraSettings(r=lora_r, alpha=2 * lora_r)) if lora_r else cfg


def _run_stage(model: str, bench: Path, out: Path, split: str, stage: str, exclude: list[str], overwrite: bool, **overrides) -> None:
    from medforget.train.loop import is_main_process
    from medforget.train.stages import run_stage

    quiet_transformers()
    with user_errors():
        cfg = _train_config(bench, stage, **overrides)
        with TrainProgress(f"{stage} on {split}") as progress:
            result = run_stage(model, bench, out, split, cfg, exclude=exclude, overwrite=overwrite, report=progress)
    if not is_main_process():  # one summary line under `accelerate launch`
        return
    resumed = f", resumed from step {result.resumed_from}" if result.resumed_from else ""
    final = f"{result.losses[-1]:.4f}" if result.losses else "n/a"
    console.print(f"{stage}: {result.steps} steps, {result.samples} samples in {result.seconds:.0f} s, "
                  f"final loss {final}{resumed} -> {out}")




def init_model_cmd(
    bench: Path = typer.Option(..., "--bench", help="Benchmark folder (its text trains the tokenizer)."),
    out: Path = typer.Option(..., "--out", help="Folder for the new model."),
    size: str = typer.Option("tiny", help="tiny or small."),
    seed: int = typer.Option(0, help="Weight initialisation seed."),
    overwrite: bool = OVERWRITE,
) -> None:
    """Build the embedded default: a tiny LLaVA-class model with a tokenizer trained on the benchmark."""
    from medforget.train.stages import init_model

    quiet_transformers()
    with user_errors():
        init_model(bench, out, size=size, seed=seed, overwrite=overwrite)
    console.print(f"tiny LLaVA ({size}) written to {out}")


def pretrain(
    model: str = typer.Option(..., "--model", help="Model folder (e.g. from init-model)."),
    bench: Path = typer.Option(..., "--bench", help="Benchmark folder."),
    out: Path = typer.Option(..., "--out", help="Folder for the pretrained model."),
    epochs: Optional[float] = EPOCHS, lr: Optional[float] = LR, batch_size: Optional[int] = BATCH,
    grad_accum: Optional[int] = ACCUM, max_steps: Optional[int] = STEPS, lora_r: int = LORA, seed: Optional[int] = SEED,
    overwrite: bool = OVERWRITE,
) -> None:
    """Teach a base model to read scans (modality, region, finding, quality, landmarks, identity cues) on `pretrain`."""
    _run_stage(model, bench, out, "pretrain", "pretrain", [], overwrite, epochs=epochs, lr=lr, batch_size=batch_size,
               grad_accum=grad_accum, max_steps=max_steps, lora_r=lora_r, seed=seed)


def finetune(
    model: str = typer.Option(..., "--model", help="Model folder or hub id."),
    bench: Path = typer.Option(..., "--bench", help="Benchmark folder."),
    out: Path = typer.Option(..., "--out", help="Folder for the fine-tuned model."),
    exclude: list[str] = typer.Option([], "--exclude", help="Leave out forget (both forget splits), forget_privacy or forget_incorrect: the retrain oracle."),
    epochs: Optional[float] = EPOCHS, lr: Optional[float] = LR, batch_size: Optional[int] = BATCH,
    grad_accum: Optional[int] = ACCUM, max_steps: Optional[int] = STEPS, lora_r: int = LORA, seed: Optional[int] = SEED,
    overwrite: bool = OVERWRITE,
) -> None:
    """Supervised fine-tuning on `train` (the vanilla model), or on `train` minus the forget splits (the oracle)."""
    _run_stage(model, bench, out, "train", "finetune", exclude, overwrite, epochs=epochs, lr=lr, batch_size=batch_size,
               grad_accum=grad_accum, max_steps=max_steps, lora_r=lora_r, seed=seed)

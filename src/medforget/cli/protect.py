"""Image protection commands: `protect` and `protect-eval`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from medforget.cli.shared import LR, OVERWRITE, console, progress_bar, quiet_transformers, user_errors
from medforget.protect.options import parse_eps, transform_names


def protect(
    images: Path = typer.Option(..., "--images", help="Folder of PNG/JPEG images, or a benchmark folder."),
    encoder: list[str] = typer.Option(..., "--encoder", help="Model whose vision tower is attacked; repeat for an ensemble."),
    out: Path = typer.Option(..., "--out", help="Folder for the protected PNGs and protect.json."),
    eps: str = typer.Option("8/255", help="L-infinity budget, as a fraction of the pixel range."),
    steps: int = typer.Option(10, help="Projected-gradient steps."),
    method: str = typer.Option("antithetical", help="antithetical, error_min, targeted or decoy."),
    seed: int = typer.Option(0, help="Random start; the same seed gives the same bytes on CPU."),
    batch_size: int = typer.Option(16, "--batch-size", help="Images per batch."),
    patients: list[str] = typer.Option([], "--patient", help="With a benchmark: protect only these patients' scans."),
    random_start: bool = typer.Option(True, "--random-start/--zero-start", help="Start PGD from uniform noise in [-eps, eps], or from the clean image."),
    min_psnr: Optional[float] = typer.Option(None, "--min-psnr", help="Keep every image at least this PSNR (dB): L2 steps inside the eps box."),
    overwrite: bool = OVERWRITE,
) -> None:
    """Add imperceptible perturbations to images before they are shared (see docs/protect.md)."""
    from medforget.protect import EnsembleEncoder, VisionEncoder, protect_folder

    quiet_transformers()
    with user_errors():
        budget = parse_eps(eps)
        encoders = [VisionEncoder.load(e) for e in encoder]
        enc = encoders[0] if len(encoders) == 1 else EnsembleEncoder(encoders)
        with progress_bar() as bar:
            task = bar.add_task(f"protecting ({method})", total=None)
            manifest = protect_folder(
                images, out, enc, method=method, eps=budget, steps=steps, seed=seed, batch_size=batch_size,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
                patient_ids=patients or None, random_start=random_start, min_psnr=min_psnr, overwrite=overwrite,
            )
    console.print(f"{manifest['count']} images protected -> {out} "
                  f"(mean PSNR {manifest['psnr_mean']} dB, max L-inf {manifest['linf_max']} px)")


def protect_eval(
    bench: Path = typer.Option(..., "--bench", help="Benchmark folder."),
    model: Path = typer.Option(..., "--model", help="The attacker's starting model, fine-tuned once per condition (e.g. a run's models/vanilla)."),
    out: Path = typer.Option(..., "--out", help="Folder for protect_eval.json and protect_eval.md."),
    encoder: list[str] = typer.Option([], "--encoder", help="Model the protection is optimised against; repeat for an ensemble (default: --model)."),
    method: str = typer.Option("antithetical", help="antithetical, error_min, targeted or decoy."),
    eps: str = typer.Option("8/255", help="L-infinity budget, as a fraction of the pixel range."),
    steps: int = typer.Option(10, help="Projected-gradient steps."),
    step_size: Optional[str] = typer.Option(None, "--step-size", help="PGD step, e.g. 1/255 (default: eps/4)."),
    random_start: bool = typer.Option(True, "--random-start/--zero-start", help="Start PGD from uniform noise in [-eps, eps], or from the clean image."),
    min_psnr: float = typer.Option(35.0, "--min-psnr", help="Keep every protected image at least this PSNR (dB); 0: no floor (sign steps)."),
    ratio: float = typer.Option(1.0, help="Share of the patients' training scans that are protected, in [0, 1]."),
    transforms: list[str] = typer.Option([], "--transforms", help="Post-processings to test, repeat or comma-separate (default: all; 'none': no post-processing)."),
    patients: str = typer.Option("holdout", help="Patient group: holdout (never fine-tuned by the vanilla model) or finetune."),
    max_patients: Optional[int] = typer.Option(None, "--max-patients", help="Only the first N patients of the group (quick looks)."),
    field: list[str] = typer.Option([], "--field", help="Private fields to fine-tune on and ask about; repeat (default: the identifying ones)."),
    seed: int = typer.Option(0, help="Protection start, protected-scan choice, MCQ distractors and fine-tuning order."),
    epochs: Optional[float] = typer.Option(None, help="Attacker's fine-tuning epochs (default: per benchmark preset)."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Attacker's fine-tuning steps (wins over --epochs)."),
    lr: Optional[float] = LR,
    train_vision: Optional[bool] = typer.Option(None, "--train-vision/--frozen-vision", help="The attacker also fine-tunes the vision tower, or keeps it frozen (default: as the preset's fine-tuning)."),
    blank: bool = typer.Option(True, help="Also fine-tune on blank scans: the leak left when nothing is learnt from the images."),
    protected_dir: Optional[Path] = typer.Option(None, "--protected-dir", help="Evaluate these already protected images (<scan_id>.png, e.g. from another tool) instead of protecting here."),
    overwrite: bool = typer.Option(False, help="Replace an existing, non-empty output folder."),
) -> None:
    """Fine-tune on protected scans, ask about the same patients on clean ones, compare with no protection,
    and repeat after common post-processings (see docs/protect.md)."""
    from medforget.protect.protocol import RESULT_FILE, TABLE_FILE, ProtectEvalConfig, run_protect_eval

    quiet_transformers()
    with user_errors():
        names = transform_names(transforms)
        settings = {"transforms": names, "fields": tuple(field) or None, "max_patients": max_patients, "epochs": epochs, "max_steps": max_steps, "lr": lr,
                    "train_vision": train_vision, "protected_dir": str(protected_dir) if protected_dir is not None else None,
                    "step_size": parse_eps(step_size, "--step-size") if step_size is not None else None}
        cfg = ProtectEvalConfig(method=method, eps=parse_eps(eps), steps=steps, random_start=random_start, ratio=ratio,
                                min_psnr=min_psnr or None,
                                patients=patients, seed=seed, blank=blank,
                                **{k: v for k, v in settings.items() if v is not None})
        cfg.check()
        with progress_bar() as bar:
            tasks: dict[str, object] = {}

            def progress(what: str, done: int, total: int) -> None:
                if what not in tasks:  # one bar at a time: the previous step is finished
                    for task in tasks.values():
                        bar.remove_task(task)
                    tasks.clear()
                    tasks[what] = bar.add_task(what, total=total)
                bar.update(tasks[what], completed=done, total=total)

            run_protect_eval(bench, model, out, cfg, encoders=encoder, overwrite=overwrite, progress=progress)
    console.print((out / TABLE_FILE).read_text(), markup=False, highlight=False)
    console.print(f"written: {out / RESULT_FILE}, {out / TABLE_FILE}")

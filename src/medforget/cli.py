"""The `medforget` command line. Each command is a thin wrapper: parse, call the library, print."""

from __future__ import annotations

import os
import sys
import time
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
console = Console(width=None if sys.stdout.isatty() else 160)  # logs and pipes get whole tables
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
    forget_ratio: Optional[float] = typer.Option(None, "--forget-ratio", help="Fraction of fine-tuned patients to forget, in (0, 0.5] (default: the preset's, 0.1)."),
    forget_level: str = typer.Option("patient", "--forget-level", help="What a forget request removes: patient (whole records), scan (the items of one scan each), field (one private detail each), hospital (every patient of one hospital)."),
    overwrite: bool = typer.Option(False, help="Replace an existing, non-empty output folder."),
) -> None:
    """Generate the synthetic benchmark: patients, scans, facts, questions and splits."""
    from medforget.world.build import generate as build
    from medforget.world.config import default_forget_ratio, preset_config

    with user_errors():
        cfg = preset_config(preset)
        forget_ratio = default_forget_ratio(preset) if forget_ratio is None else forget_ratio
        with progress_bar() as bar:
            task = bar.add_task("rendering scans", total=None)
            meta = build(cfg, seed, forget_ratio, out, overwrite=overwrite, forget_level=forget_level,
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


@app.command("import")
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
    table = Table(title=f"imported {fmt} {src} -> {out}")
    table.add_column("split")
    table.add_column("rows", justify="right")
    for name, count in meta["counts"].items():
        table.add_row(name, str(count))
    console.print(table)
    request = meta["forget_request"]
    console.print(f"forget request: level {request['level']}, {request['rows']} row(s) of {len(request['affected_patients'])} "
                  f"patient(s), {len(request['sibling_patients'])} sibling patient(s); content hash {meta['content_hash'][:16]}")


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


def _quiet_transformers() -> None:
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

    _quiet_transformers()
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


EPOCHS = typer.Option(None, help="Epochs (default: the preset's; given alone, it replaces a preset's step limit).")
LR = typer.Option(None, "--lr", help="Peak learning rate (default: the preset's).")
BATCH = typer.Option(None, "--batch-size", help="Batch size per process (default: the preset's).")
ACCUM = typer.Option(None, "--grad-accum", help="Gradient accumulation steps.")
STEPS = typer.Option(None, "--max-steps", help="Stop after this many optimizer steps (wins over --epochs).")
LORA = typer.Option(0, "--lora-r", help="Train LoRA adapters of this rank instead of all weights (0: full fine-tuning).")
SEED = typer.Option(None, "--seed", help="Training seed (data order, augmentation).")
OVERWRITE = typer.Option(False, help="Replace a finished model in the output folder.")


@app.command("init-model")
def init_model_cmd(
    bench: Path = typer.Option(..., "--bench", help="Benchmark folder (its text trains the tokenizer)."),
    out: Path = typer.Option(..., "--out", help="Folder for the new model."),
    size: str = typer.Option("tiny", help="tiny or small."),
    seed: int = typer.Option(0, help="Weight initialisation seed."),
    overwrite: bool = OVERWRITE,
) -> None:
    """Build the embedded default: a tiny LLaVA-class model with a tokenizer trained on the benchmark."""
    from medforget.train.stages import init_model

    _quiet_transformers()
    with user_errors():
        init_model(bench, out, size=size, seed=seed, overwrite=overwrite)
    console.print(f"tiny LLaVA ({size}) written to {out}")


@app.command()
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


@app.command()
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


@app.command()
def evaluate(
    model: str = typer.Option(..., "--model", help="Model folder or hub id."),
    bench: Path = typer.Option(..., "--bench", help="Benchmark folder."),
    out: Path = typer.Option(..., "--out", help="Metrics JSON; per-item outputs go beside it as .parquet."),
    splits: list[str] = typer.Option([], "--splits", help="Splits to evaluate (repeat the option); default: all evaluation splits."),
    batch_size: int = typer.Option(64, "--batch-size", help="Sequences per forward pass."),
    max_new_tokens: int = typer.Option(24, help="Longest generated answer."),
    min_k: float = typer.Option(0.2, "--min-k", help="k of the Min-K% and Min-K%++ attacks."),
) -> None:
    """Score a model on the benchmark: accuracy, leak rates, refusals, general capability, membership attacks."""
    from medforget.evaluate.run import DEFAULT_SPLITS, evaluate_model, write_results

    _quiet_transformers()
    with user_errors():
        if not 0 < min_k <= 1:
            raise MedforgetError("--min-k must be in (0, 1]")
        with progress_bar() as bar:
            tasks: dict[str, object] = {}

            def progress(split: str, done: int, total: int) -> None:
                if split not in tasks:
                    tasks[split] = bar.add_task(f"evaluating {split}", total=total)
                bar.update(tasks[split], completed=done)

            metrics, records = evaluate_model(model, bench, splits or DEFAULT_SPLITS, batch_size=batch_size,
                                              max_new_tokens=max_new_tokens, min_k=min_k, progress=progress)
        json_path, items_path = write_results(metrics, records, out)
    table = Table(title=f"{model} ({metrics['seconds']:.0f} s)")
    for col in ("split", "items", "MCQ acc", "chance", "leak (exact)", "refusal"):
        table.add_column(col, justify="right" if col != "split" else "left")
    for split, m in metrics["splits"].items():
        fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        table.add_row(split, str(m["n"]), fmt(m.get("mcq_acc")), fmt(m.get("mcq_chance")), fmt(m.get("leak_exact")), fmt(m.get("refusal_rate")))
    console.print(table)
    if metrics["skipped"]:
        console.print(f"skipped (not in {bench}): {', '.join(metrics['skipped'])}")
    console.print(f"metrics: {json_path}; per-item outputs: {items_path}")


@app.command()
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

    _quiet_transformers()
    with user_errors():
        if fail_above is not None and not 0 <= fail_above <= 1:
            raise MedforgetError("--fail-above must be a rate in [0, 1]")
        with progress_bar() as bar:
            tasks: dict[str, object] = {}

            def progress(group: str, step: int, total: int) -> None:
                if group not in tasks:
                    tasks[group] = bar.add_task(f"auditing {group}", total=total)
                bar.advance(tasks[group], step)

            result = run_audit(model, data, forget, reveal=reveal, batch_size=batch_size, max_new_tokens=max_new_tokens, progress=progress)
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


def parse_eps(text: str, option: str = "--eps") -> float:
    """'8/255' or '0.03' -> a float."""
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            return float(num) / float(den)
        return float(text)
    except (ValueError, ZeroDivisionError):
        raise MedforgetError(f"{option} must be a number or a fraction like 8/255, got {text!r}") from None


@app.command()
def protect(
    images: Path = typer.Option(..., "--images", help="Folder of PNG/JPEG images, or a benchmark folder."),
    encoder: list[str] = typer.Option(..., "--encoder", help="Model whose vision tower is attacked; repeat for an ensemble."),
    out: Path = typer.Option(..., "--out", help="Folder for the protected PNGs and protect.json."),
    eps: str = typer.Option("8/255", help="L-infinity budget, as a fraction of the pixel range."),
    steps: int = typer.Option(10, help="Projected-gradient steps."),
    method: str = typer.Option("antithetical", help="antithetical, error_min or targeted."),
    seed: int = typer.Option(0, help="Random start; the same seed gives the same bytes on CPU."),
    batch_size: int = typer.Option(16, "--batch-size", help="Images per batch."),
    patients: list[str] = typer.Option([], "--patient", help="With a benchmark: protect only these patients' scans."),
    random_start: bool = typer.Option(True, "--random-start/--zero-start", help="Start PGD from uniform noise in [-eps, eps], or from the clean image."),
    min_psnr: Optional[float] = typer.Option(None, "--min-psnr", help="Keep every image at least this PSNR (dB): L2 steps inside the eps box."),
    overwrite: bool = OVERWRITE,
) -> None:
    """Add imperceptible perturbations to images before they are shared (see docs/protect.md)."""
    from medforget.protect import EnsembleEncoder, VisionEncoder, protect_folder

    _quiet_transformers()
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


def transform_names(values: list[str]) -> tuple[str, ...] | None:
    """Repeated and/or comma-separated names; `none` alone means no post-processing; nothing given: the default."""
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    if names == ["none"]:
        return ()
    return tuple(names) if names else None


@app.command("protect-eval")
def protect_eval(
    bench: Path = typer.Option(..., "--bench", help="Benchmark folder."),
    model: Path = typer.Option(..., "--model", help="The attacker's starting model, fine-tuned once per condition (e.g. a run's models/vanilla)."),
    out: Path = typer.Option(..., "--out", help="Folder for protect_eval.json and protect_eval.md."),
    encoder: list[str] = typer.Option([], "--encoder", help="Model the protection is optimised against; repeat for an ensemble (default: --model)."),
    method: str = typer.Option("antithetical", help="antithetical, error_min or targeted."),
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

    _quiet_transformers()
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


@app.command()
def run(
    out: Path = typer.Option(..., "--out", help="Run folder (created, or resumed when it exists)."),
    preset: Optional[str] = typer.Option(None, help="smoke, demo or standard (default demo)."),
    methods: list[str] = typer.Option([], "--methods", help="Unlearning methods to compare (repeat; default: all)."),
    scenarios: list[str] = typer.Option([], "--scenario", help="privacy, incorrect, or both (one model forgets both sets); repeat for several (default: privacy and incorrect, each against its own oracle)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Stages run side by side, each in its own process (default 2 on a machine with 2 or more cores; 1 runs them one after another with progress bars)."),
    model: Optional[str] = typer.Option(None, "--model", help="Fine-tune this checkpoint (path or hub id) instead of the embedded default."),
    seed: Optional[int] = typer.Option(None, help="Seed of the benchmark and of every training run (default 0)."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML file with the same settings; options given here win."),
    force: list[str] = typer.Option([], "--force", help="Redo this stage and every stage after it (generate, init, pretrain, vanilla, oracle, unlearn, eval, report)."),
) -> None:
    """Run the whole benchmark: generate, build and pretrain the base model, fine-tune the vanilla model,
    train the retrain oracle, unlearn with every method, evaluate every model, and write the report."""
    from medforget.pipeline import RunConfig, run_pipeline

    _quiet_transformers()
    with user_errors():
        settings = {"preset": preset, "scenarios": scenarios or None, "model": model, "seed": seed, "methods": methods or None,
                    "workers": workers}
        if config is not None:
            cfg = RunConfig.from_yaml(config, **settings)
        else:
            cfg = RunConfig(**{k: v for k, v in settings.items() if v is not None})
        bars: dict[str, TrainProgress] = {}

        def train_report(stage: str):
            bar = TrainProgress(stage)

            def report(info: dict) -> None:
                if stage not in bars:
                    bars[stage] = bar.__enter__()
                bar(info)
                if info["step"] >= info["total"]:
                    bars.pop(stage).__exit__(None, None, None)

            return report

        began = time.perf_counter()
        runner = run_pipeline(cfg, out, force=force, log=lambda line: err.print(line), train_report=train_report)
    _print_leaderboard(out)
    console.print(f"{len(runner.ran)} stage(s) run, {len(runner.skipped)} up to date, {time.perf_counter() - began:.0f} s; "
                  f"report: {out / 'report.html'}")


SUMMARY_COLUMNS = ("model", "forget", "test_forget", "leak", "mia_auroc", "corrupted", "true", "test_corrupted", "neighbour",
                   "retain", "test_retain", "general", "ues_privacy", "ues_incorrect", "seconds")


def _print_leaderboard(run_dir: Path) -> None:
    """The short summary table of each scenario of a run (the full ones are in leaderboard.md and report.html)."""
    import json

    boards = json.loads((run_dir / "results.json").read_text()).get("leaderboards", {})
    for scenario, board in boards.items():
        headers = {c["key"]: c["header"] for c in board.get("columns", [])}
        rows = board.get("rows", [])
        keys = [k for k in SUMMARY_COLUMNS if k in headers and any(r.get(k) is not None for r in rows)]
        table = Table(title=f"{scenario} leaderboard ({run_dir})")
        for k in keys:
            table.add_column(headers[k], justify="left" if k == "model" else "right")
        for row in rows:
            table.add_row(*("-" if row.get(k) is None else f"{row[k]:.3f}" if isinstance(row[k], float) and k != "seconds"
                            else f"{row[k]:.0f}" if k == "seconds" else str(row[k]) for k in keys))
        console.print(table)


def _register_commands() -> None:
    """Commands that live beside their subsystem."""
    from medforget.methods.commands import register as register_methods
    from medforget.report.command import report_command

    register_methods(app)
    report_command(app)


_register_commands()


def main() -> None:  # pragma: no cover - console entry for `python -m medforget.cli`
    app(prog_name="medforget")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""Protections optimised through the VLM's own fine-tuning loss, judged by the protect-eval protocol.

    python benchmarks/protect_vlm_loss.py runs/demo                      # min-min (about 150 s)
    python benchmarks/protect_vlm_loss.py runs/demo --objective poison   # targeted poisoning (about 75 s)

The built-in methods optimise the vision features only (`error_min` with a fixed nearest-class-mean surrogate).
These two go through the whole model, on the attacker's own task: the holdout patients' identifying items that
protect-eval fine-tunes on, each with its training scan. Every noise step is an L2 step inside eps 8/255 and the
35 dB PSNR floor (`attacks.descend`), through the attacker's augmentation (random shift and gain).

`minmin`, unlearnable examples in their full form (Huang et al., ICLR 2021): a surrogate copy of the starting
model is fine-tuned on the items (the attacker's learning rate, batch size, frozen or trained vision tower),
alternating
with error-minimising noise:

    for each round:  NOISE steps   delta <- descend(delta, grad_delta  L(surrogate, x + delta, answers of A))
                     TRAIN steps   surrogate <- AdamW step on L(surrogate, x + delta, answers of A)

If the noise became the shortcut unlearnable examples rely on, the surrogate's loss on perturbed scans would fall
while its loss on the same scans without the noise stayed high; each round prints both.

`poison`, adversarial poisoning (Fowl et al., NeurIPS 2021): holdout patient A's scans are perturbed so that the
fixed starting model answers with the details of a patient it already knows (B, the i-th `finetune` patient for
the i-th holdout patient; so the start must know the `finetune` patients, as `vanilla` does), i.e. they carry
B's features while the attacker trains them on A's details:

    NOISE steps   delta <- descend(delta, grad_delta  L(start, x + delta, answers of B))

Either way the noise is written as `<scan_id>.png` and judged by `run_protect_eval(protected_dir=...)`: an
attacker fine-tuned on it from the starting model, asked on clean test scans. Results go to
RUN_DIR/protect_<objective>/ (or --out). Run it with OMP_NUM_THREADS=1 or 2 on a shared CPU.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from medforget.data.collate import collate, pad_token_id
from medforget.data.formatting import format_example
from medforget.errors import MedforgetError
from medforget.models.loading import load_model
from medforget.protect.attacks import descend, quantise, to_pixels
from medforget.protect.encoder import VisionEncoder
from medforget.protect.protocol import TABLE_FILE, Items, ProtectEvalConfig, run_protect_eval, select_items
from medforget.protect.quality import psnr
from medforget.train.augment import augment
from medforget.train.config import TrainConfig
from medforget.models.parts import freeze_vision_tower
from medforget.world.storage import Benchmark, load_benchmark

EPS, MIN_PSNR = 8 / 255, 35.0
OBJECTIVES = ("minmin", "poison")


class Task:
    """Training rows with their scans, and a model's mean answer-token loss on them for given scan pixels."""

    def __init__(self, bench: Benchmark, rows: list[dict], scans: list[str], processor) -> None:
        self.examples = [format_example(processor, r, [bench.image(r["scan_ids"][0])]) for r in rows]
        index = {s: i for i, s in enumerate(scans)}
        self.image_of = torch.tensor([index[r["scan_ids"][0]] for r in rows])
        self.pad = pad_token_id(processor)
        self.every = list(range(len(rows)))

    def loss(self, model, encoder: VisionEncoder, pixels: torch.Tensor, rows: list[int] | None = None,
             seed: int | None = None) -> torch.Tensor:
        """`rows` (default all) with `pixels` as the scans; `seed`: apply the attacker's augmentation."""
        rows = self.every if rows is None else rows
        batch = collate([self.examples[i] for i in rows], pad_token_id=self.pad)
        batch["pixel_values"] = encoder.preprocess(pixels[self.image_of[rows]])
        if seed is not None:
            augment(batch, seed)
        return model(**batch).loss

    def value(self, model, encoder: VisionEncoder, pixels: torch.Tensor) -> float:
        model.eval()
        with torch.no_grad():
            return float(self.loss(model, encoder, pixels))


def minmin(model, encoder, task: Task, x: torch.Tensor, train_cfg: TrainConfig, args: argparse.Namespace) -> torch.Tensor:
    """Alternate error-minimising noise and surrogate fine-tuning; print both losses after every round."""
    torch.manual_seed(args.seed)
    surrogate = copy.deepcopy(model)
    if not train_cfg.train_vision:
        freeze_vision_tower(surrogate)
    optimizer = torch.optim.AdamW([p for p in surrogate.parameters() if p.requires_grad], lr=train_cfg.lr,
                                  weight_decay=train_cfg.weight_decay)
    rng = np.random.default_rng(args.seed)
    delta, step = torch.zeros_like(x), 0
    print(f"loss of the start on the items: {task.value(model, encoder, x):.3f}")
    print("round  loss on perturbed scans  loss on the same scans without noise")
    for r in range(args.rounds):
        surrogate.eval()
        for _ in range(args.noise_steps):
            delta.requires_grad_(True)
            (grad,) = torch.autograd.grad(task.loss(surrogate, encoder, x + delta, seed=args.seed * 100_003 + step), delta)
            delta = descend(x, delta, grad, EPS, args.step_size / 255, MIN_PSNR)
            step += 1
        surrogate.train()
        for _ in range(args.train_steps):
            rows = sorted(rng.choice(len(task.every), min(train_cfg.batch_size, len(task.every)), replace=False).tolist())
            loss = task.loss(surrogate, encoder, (x + delta).detach(), rows, seed=args.seed * 100_003 + step)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
        print(f"{r:5d}  {task.value(surrogate, encoder, x + delta):23.3f}  {task.value(surrogate, encoder, x):36.3f}", flush=True)
    return x + delta


def poison(model, encoder, bench: Benchmark, items: Items, x: torch.Tensor, processor, args: argparse.Namespace) -> torch.Tensor:
    """Targeted noise: the starting model should answer about holdout patient i with known patient i's details."""
    known = select_items(bench, "finetune", args.seed)
    if len(known.patients) < len(items.patients):
        raise MedforgetError(f"{len(items.patients)} holdout patients but only {len(known.patients)} finetune patients to pair them with")
    pair = dict(zip(items.patients, known.patients))
    values = {(r["patient_id"], r["field"]): r["answer"] for r in known.train_rows}
    generated = [r for r in items.train_rows if r["task"] != "mcq"]  # an MCQ's options hold A's answer
    target = Task(bench, [dict(r, answer=values[(pair[r["patient_id"]], r["field"])]) for r in generated],
                  items.train_scans, processor)
    own = Task(bench, generated, items.train_scans, processor)
    model.eval()
    delta = torch.zeros_like(x)
    print("step  loss toward the paired known patient's answers  loss of the patient's own answers")
    print(f"{0:4d}  {target.value(model, encoder, x):47.3f}  {own.value(model, encoder, x):33.3f}")
    for step in range(args.steps):
        delta.requires_grad_(True)
        (grad,) = torch.autograd.grad(target.loss(model, encoder, x + delta, seed=args.seed * 100_003 + step), delta)
        delta = descend(x, delta, grad, EPS, args.step_size / 255, MIN_PSNR)
        if (step + 1) % 10 == 0 or step + 1 == args.steps:
            print(f"{step + 1:4d}  {target.value(model, encoder, x + delta):47.3f}  {own.value(model, encoder, x + delta):33.3f}",
                  flush=True)
    return x + delta


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--objective", choices=OBJECTIVES, default="minmin")
    parser.add_argument("--start", default="vanilla", help="model folder under RUN_DIR/models: attacker (and surrogate) start")
    parser.add_argument("--out", type=Path, default=None, help="default: RUN_DIR/protect_<objective>")
    parser.add_argument("--rounds", type=int, default=12, help="minmin: rounds")
    parser.add_argument("--train-steps", type=int, default=6, help="minmin: surrogate steps per round (6 x 32 rows: one epoch on demo)")
    parser.add_argument("--noise-steps", type=int, default=5, help="minmin: noise steps per round")
    parser.add_argument("--steps", type=int, default=40, help="poison: noise steps")
    parser.add_argument("--step-size", type=float, default=1.0, help="RMS of one noise step, in grey levels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-vision", action="store_true", help="the attacker (and the minmin surrogate) also train the vision tower")
    parser.add_argument("--max-patients", type=int, default=None, help="the first N patients only (quick looks, tests)")
    args = parser.parse_args(argv)
    out = args.out or args.run_dir / f"protect_{args.objective}"
    began = time.perf_counter()
    try:
        bench = load_benchmark(args.run_dir / "bench")
        model_dir = args.run_dir / "models" / args.start
        cfg = ProtectEvalConfig(transforms=(), seed=args.seed, max_patients=args.max_patients,
                                train_vision=True if args.train_vision else None)
        items = select_items(bench, cfg.patients, cfg.seed, cfg.max_patients, cfg.fields)
        model, processor = load_model(model_dir)
        encoder = VisionEncoder(model, processor, name=str(model_dir))
        clean = np.stack([np.asarray(bench.image(s).convert("L"))[..., None] for s in items.train_scans])  # world scans are grey
        x = to_pixels(clean, encoder.device)
        print(f"{args.objective}: {len(items.train_rows)} items on {len(x)} training scans of {len(items.patients)} "
              f"{cfg.patients} patients; start {model_dir}")
        if args.objective == "minmin":
            task = Task(bench, items.train_rows, items.train_scans, processor)
            adversarial = minmin(model, encoder, task, x, cfg.train_config(bench.meta["preset"]), args)
        else:
            adversarial = poison(model, encoder, bench, items, x, processor, args)
        protected = quantise(clean, adversarial, EPS, MIN_PSNR)
        images = out / "images"
        images.mkdir(parents=True, exist_ok=True)
        for sid, pixels in zip(items.train_scans, protected):
            Image.fromarray(pixels[..., 0]).save(images / f"{sid}.png")
        quality = [psnr(a, b) for a, b in zip(clean, protected)]
        print(f"noise written to {images}: PSNR mean {np.mean(quality):.1f} dB, min {min(quality):.1f} dB, "
              f"L-inf {int(np.abs(protected.astype(int) - clean).max())} grey levels")
        run_protect_eval(args.run_dir / "bench", model_dir, out / "eval", replace(cfg, protected_dir=str(images)), overwrite=True)
    except MedforgetError as err:
        sys.exit(f"error: {err}")
    print((out / "eval" / TABLE_FILE).read_text())
    print(f"({time.perf_counter() - began:.0f} s)")


if __name__ == "__main__":
    main()

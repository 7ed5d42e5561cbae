"""Class-wise protection (one pattern per patient, added to every training scan of that patient), judged by
protect-eval: the shortcut form of unlearnable examples, which the sample-wise objectives are not.

    python benchmarks/protect_classwise.py runs/anatomy --pattern random      # a fixed random blocky pattern
    python benchmarks/protect_classwise.py runs/anatomy --pattern optimised   # optimised on the starting model

Huang et al. (2021) and Yu et al. (2022) find that class-wise noise, one pattern per label, is the easiest
shortcut a network can learn: it explains the label on every training image, so the real content is never
needed. Here the label is the patient. `random`: a +-eps pattern of `--cell`-pixel blocks per patient, drawn
from the seed. `optimised`: one change per patient, shared by all of that patient's scans, that moves the
starting model's projected image tokens of every one of those scans along a patient-specific random
direction as far as the budget allows, averaged over the attacker's +-H/16-pixel shifts (train/augment.py).
Both are projected onto the eps box and the `--min-psnr` floor per scan, then judged with
`run_protect_eval(protected_dir=...)` (docs/protect.md): the attacker fine-tunes on the protected scans and
is asked on clean ones. Writes OUT/protected/<scan_id>.png and OUT/eval/protect_eval.{json,md}; prints the
table. Run it with OMP_NUM_THREADS=1.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from medforget.cli.shared import finished_stages, quiet_transformers
from medforget.errors import MedforgetError
from medforget.protect.attacks import descend, quantise, to_pixels
from medforget.protect.encoder import VisionEncoder
from medforget.protect.options import parse_eps, transform_names
from medforget.protect.protocol import TABLE_FILE, ProtectEvalConfig, select_items
from medforget.protect.protocol import run_protect_eval
from medforget.world.storage import load_benchmark, write_atomically


def tokens(encoder: VisionEncoder, pixels: torch.Tensor) -> torch.Tensor:
    """(N, T, D) projected image tokens, what the language model reads (not mean-pooled)."""
    out = encoder.model.get_image_features(pixel_values=encoder.preprocess(pixels))
    return torch.stack([f.reshape(-1, f.shape[-1]) for f in out.pooler_output]).float()


def random_patterns(n: int, shape: tuple[int, int], cell: int, eps: float, seed: int) -> torch.Tensor:
    """(n, 1, H, W): per label, +-eps on blocks of `cell` pixels, signs drawn from the seed."""
    h, w = shape
    signs = np.random.default_rng([seed, 19]).choice([-1.0, 1.0], size=(n, 1, -(-h // cell), -(-w // cell)))
    blocks = np.kron(signs, np.ones((1, 1, cell, cell)))[..., :h, :w]
    return torch.tensor(blocks, dtype=torch.float32) * eps


def optimised_patterns(encoder: VisionEncoder, x: torch.Tensor, labels: torch.Tensor, n: int, eps: float,
                       min_psnr: float | None, steps: int, seed: int) -> torch.Tensor:
    """One change per label, L2 steps of RMS 1/255 inside the eps box and the floor's ball, EOT over shifts."""
    h, w = x.shape[-2:]
    with torch.no_grad():
        size = tokens(encoder, x[:1]).shape[1:]
    directions = torch.nn.functional.normalize(
        torch.tensor(np.random.default_rng([seed, 23]).normal(size=(n, size.numel())), dtype=torch.float32), dim=-1)
    reach = max(1, h // 16)
    generator = torch.Generator().manual_seed(seed)
    patterns = torch.zeros(n, 1, h, w)
    for _ in range(steps):
        patterns.requires_grad_(True)
        shift = [int(v) for v in torch.randint(-reach, reach + 1, (2,), generator=generator)]
        with torch.no_grad():
            before = tokens(encoder, torch.roll(x, shift, dims=(2, 3)))
        moved = tokens(encoder, torch.roll((x + patterns[labels]).clamp(0, 1), shift, dims=(2, 3))) - before
        gain = (moved.flatten(1) * directions[labels]).sum()
        (grad,) = torch.autograd.grad(-gain, patterns)
        with torch.no_grad():
            # x = 0.5 only keeps the pattern itself unclipped; each scan is clipped to [0, 1] when it is applied
            patterns = descend(torch.full_like(patterns, 0.5), patterns, grad, eps, 1 / 255, min_psnr)
    return patterns.detach()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--pattern", choices=("random", "optimised"), default="optimised")
    parser.add_argument("--out", type=Path, default=None, help="default: RUN_DIR/protect_classwise-<pattern>")
    parser.add_argument("--start", default="vanilla", help="model folder under RUN_DIR/models: attacker and protector")
    parser.add_argument("--eps", default="8/255")
    parser.add_argument("--min-psnr", type=float, default=35.0, help="PSNR floor in dB; 0: none (sign steps)")
    parser.add_argument("--blank", action="store_true", help="also fine-tune on blank scans (the floor)")
    parser.add_argument("--steps", type=int, default=100, help="optimised: PGD steps")
    parser.add_argument("--cell", type=int, default=8, help="random: block size in pixels")
    parser.add_argument("--transforms", action="append", default=[], help="post-processings (default: none)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    quiet_transformers()
    torch.set_num_threads(1)
    began = time.perf_counter()
    try:
        eps = parse_eps(args.eps, "--eps")
        floor = args.min_psnr or None
        names = transform_names(args.transforms or ["none"])
        out = args.out or args.run_dir / f"protect_classwise-{args.pattern}"
        if out.exists() and any(out.iterdir()):
            raise MedforgetError(f"output folder {out} exists and is not empty")
        bench = load_benchmark(args.run_dir / "bench")
        model = args.run_dir / "models" / args.start
        items = select_items(bench, "holdout", args.seed)
        owner = {s["scan_id"]: s["patient_id"] for s in bench["scans"].select_columns(["scan_id", "patient_id"]).to_list()}
        patients = sorted({owner[s] for s in items.train_scans})
        labels = torch.tensor([patients.index(owner[s]) for s in items.train_scans])
        clean = np.stack([np.asarray(bench.image(s).convert("L"))[..., None] for s in items.train_scans])
        x = to_pixels(clean, torch.device("cpu"))
        if args.pattern == "random":
            patterns = random_patterns(len(patients), tuple(x.shape[-2:]), args.cell, eps, args.seed)
        else:
            patterns = optimised_patterns(VisionEncoder.load(model, device="cpu"), x, labels, len(patients), eps,
                                          floor, args.steps, args.seed)
        delta = descend(x, patterns[labels], torch.zeros_like(x), eps, 0.0, floor)  # each scan: box, floor, [0, 1]
        protected = quantise(clean, x + delta, eps, floor)

        def fill(tmp: Path) -> None:
            for scan_id, image in zip(items.train_scans, protected):
                Image.fromarray(image[..., 0], mode="L").save(tmp / f"{scan_id}.png")

        write_atomically(out / "protected", fill, overwrite=False)
        cfg = ProtectEvalConfig(protected_dir=str(out / "protected"), eps=eps, min_psnr=floor, seed=args.seed, blank=args.blank,
                                **({"transforms": names} if names is not None else {}))
        run_protect_eval(args.run_dir / "bench", model, out / "eval", cfg, overwrite=True, progress=finished_stages(began))
    except MedforgetError as err:
        sys.exit(f"error: {err}")
    print(f"class-wise pattern: {args.pattern}, {len(patients)} patients, {len(items.train_scans)} training scans")
    print((out / "eval" / TABLE_FILE).read_text())
    print(f"({time.perf_counter() - began:.0f} s)")


if __name__ == "__main__":
    main()

"""Protect a folder of images, or a benchmark's scans, into a folder of PNGs plus a ``protect.json`` manifest.

Every input is decoded and checked before any perturbation starts, and the output folder is written beside
its destination and moved into place at the end: a bad file fails the run with its name and leaves nothing.
Outputs are PNG (lossless, so the integer budget holds on disk), named after the input's stem, with the
input's size and mode (L stays L, RGB stays RGB).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from medforget.errors import MedforgetError
from medforget.protect.attacks import (
    DEFAULT_EPS,
    Progress,
    Protector,
    check_settings,
    eps_pixels,
    plan_batches,
    protect_batches,
)
from medforget.protect.encoder import Encoder
from medforget.protect.quality import psnr, ssim
from medforget.world.storage import META_FILE, load_benchmark, write_atomically

MANIFEST = "protect.json"
SUFFIXES = (".png", ".jpg", ".jpeg")
MODES = ("L", "RGB")


@dataclass(frozen=True)
class Source:
    """The images to protect: where each comes from (for errors), its output name, its pseudo-label, how to open it."""

    kind: str
    where: Path
    origins: list[str]
    names: list[str]
    labels: list[str]
    read: Callable[[int], Image.Image]


def folder_source(folder: Path) -> Source:
    """Every non-hidden file directly in ``folder`` is an input; each image is its own pseudo-label."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.name != MANIFEST)
    for path in files:
        if path.suffix.lower() not in SUFFIXES:
            raise MedforgetError(f"{path}: not an image file (expected only .png, .jpg or .jpeg files in {folder})")
    names = [f"{path.stem}.png" for path in files]
    seen: dict[str, Path] = {}
    for name, path in zip(names, files):
        if name in seen:
            raise MedforgetError(f"{seen[name]} and {path} would both be written as {name}; rename one of them")
        seen[name] = path
    return Source("folder", folder, [str(p) for p in files], names, [p.name for p in files], lambda i: open_image(files[i]))


def benchmark_source(folder: Path, scan_ids: Iterable[str] | None, patient_ids: Iterable[str] | None) -> Source:
    """The benchmark's scans (all, or those listed or belonging to the listed patients); pseudo-label = patient id."""
    bench = load_benchmark(folder)
    scans = bench["scans"].select_columns(["scan_id", "patient_id"]).to_dict()
    rows = list(zip(scans["scan_id"], scans["patient_id"]))
    wanted_scans, wanted_patients = set(scan_ids or ()), set(patient_ids or ())
    _check_known("scan", wanted_scans, {s for s, _ in rows}, folder)
    _check_known("patient", wanted_patients, {p for _, p in rows}, folder)
    if wanted_scans or wanted_patients:
        rows = [(s, p) for s, p in rows if s in wanted_scans or p in wanted_patients]
    ids = [s for s, _ in rows]

    def open_scan(i: int) -> Image.Image:
        try:
            return bench.image(ids[i])
        except (OSError, SyntaxError, ValueError) as err:
            raise MedforgetError(f"scan {ids[i]} in {folder}: cannot decode its image ({err})") from None

    return Source("benchmark", folder, [f"scan {s}" for s in ids], [f"{s}.png" for s in ids], [p for _, p in rows], open_scan)


def open_source(path: str | Path, scan_ids: Iterable[str] | None = None, patient_ids: Iterable[str] | None = None) -> Source:
    """A benchmark folder (it has ``benchmark.json``) or a plain folder of images."""
    folder = Path(path)
    if not folder.is_dir():
        raise MedforgetError(f"input folder {folder} does not exist")
    if (folder / META_FILE).is_file():
        return benchmark_source(folder, scan_ids, patient_ids)
    if scan_ids or patient_ids:
        raise MedforgetError(f"{folder} is not a benchmark ({META_FILE} is missing): scan and patient filters need one")
    return folder_source(folder)


def read_array(source: Source, i: int) -> np.ndarray:
    """Decode input ``i`` completely to (H, W, C) uint8, or fail naming it."""
    image = source.read(i)
    if image.mode not in MODES:
        raise MedforgetError(
            f"{source.origins[i]}: image mode {image.mode} is not supported (expected L or RGB; convert it first)"
        )
    pixels = np.asarray(image, dtype=np.uint8)
    return pixels[..., None] if pixels.ndim == 2 else pixels


def protect_folder(
    source_dir: str | Path,
    out_dir: str | Path,
    encoder: Encoder,
    method: str = "antithetical",
    eps: float = DEFAULT_EPS,
    steps: int = 10,
    seed: int = 0,
    batch_size: int = 16,
    progress: Progress | None = None,
    *,
    scan_ids: Iterable[str] | None = None,
    patient_ids: Iterable[str] | None = None,
    step_size: float | None = None,
    target: Image.Image | None = None,
    random_start: bool = True,
    min_psnr: float | None = None,
    overwrite: bool = False,
) -> dict:
    """Protect every selected image of ``source_dir`` into ``out_dir``; returns the manifest also written there."""
    check_settings(method, eps, steps, step_size, seed, min_psnr)
    if batch_size < 1:
        raise MedforgetError(f"batch size must be >= 1, got {batch_size}")
    source = open_source(source_dir, scan_ids, patient_ids)
    out = Path(out_dir)
    if out.resolve() == source.where.resolve():
        raise MedforgetError(f"output folder {out} is the input folder; choose another one")
    if not source.names:
        raise MedforgetError(f"no images to protect in {source.where}")
    shapes = [read_array(source, i).shape for i in range(len(source.names))]  # decode everything before any work
    batches = plan_batches(shapes, batch_size)
    protector = Protector(encoder, method, eps, steps, step_size, seed, target, random_start, min_psnr)
    records: list[dict] = []
    manifest = {
        "method": method, "eps": eps, "eps_pixels": eps_pixels(eps), "steps": steps, "step_size": protector.step_size,
        "random_start": random_start, "min_psnr": min_psnr, "seed": seed, "batch_size": batch_size, "encoders": list(encoder.names),
        "source": str(source.where), "source_kind": source.kind,
    }
    if method == "targeted":
        manifest["target"] = "given" if target is not None else "default"

    def load(indices: list[int]) -> np.ndarray:
        return np.stack([read_array(source, i) for i in indices])

    def fill(tmp: Path) -> None:
        for indices, clean, protected in protect_batches(protector, load, batches, source.labels, progress):
            for i, before, after in zip(indices, clean, protected):
                Image.fromarray(after[..., 0] if after.shape[-1] == 1 else after).save(tmp / source.names[i], format="PNG")
                records.append(_image_record(source, i, before, after))
        records.sort(key=lambda r: r["file"])
        manifest.update(_summary(records), images=records)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")

    write_atomically(out, fill, overwrite)
    return manifest


def open_image(path: Path) -> Image.Image:
    """Decode an image file completely (a truncated file fails here, not later), or fail naming it."""
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise MedforgetError(f"{path}: cannot decode image ({err})") from None


def _check_known(what: str, wanted: set[str], known: set[str], folder: Path) -> None:
    unknown = sorted(wanted - known)
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise MedforgetError(f"unknown {what} id(s) {shown}: not in {folder}/scans")


def _image_record(source: Source, i: int, clean: np.ndarray, protected: np.ndarray) -> dict:
    quality = psnr(clean, protected)
    return {
        "file": source.names[i],
        "source": source.origins[i],
        "mode": "L" if clean.shape[-1] == 1 else "RGB",
        "linf": int(np.abs(clean.astype(np.int16) - protected.astype(np.int16)).max()),
        "psnr": None if math.isinf(quality) else round(quality, 4),  # identical images: infinite PSNR, not valid JSON
        "ssim": round(ssim(clean, protected), 6),
    }


def _summary(records: list[dict]) -> dict:
    finite = [r["psnr"] for r in records if r["psnr"] is not None]
    modes = {mode: sum(r["mode"] == mode for r in records) for mode in MODES}
    return {
        "count": len(records),
        "modes": {mode: n for mode, n in modes.items() if n},
        "unchanged": len(records) - len(finite),
        "linf_mean": round(float(np.mean([r["linf"] for r in records])), 4),
        "linf_max": max(r["linf"] for r in records),
        "psnr_mean": round(float(np.mean(finite)), 4) if finite else None,
        "ssim_mean": round(float(np.mean([r["ssim"] for r in records])), 6),
    }

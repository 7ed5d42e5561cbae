"""Projected gradient descent (Madry et al. 2018) on pixels under an L-infinity budget, with four objectives.

Images travel as uint8 arrays of shape (H, W, C), C = 1 (grey) or 3 (RGB); batches stack images of one shape.
Every objective works on unit embeddings, so an ``EnsembleEncoder`` drops in for a single ``VisionEncoder``.
The random start of image ``i`` comes from ``numpy.random.default_rng([seed, i])``: same seed, same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from medforget.errors import MedforgetError
from medforget.protect.encoder import Encoder
from medforget.protect.quality import psnr_of

METHODS = ("antithetical", "targeted", "error_min", "decoy")
DEFAULT_EPS = 8 / 255
PROTOTYPE_SCALE = 10.0  # logit scale of the error_min head: cosine logits in [-10, 10] keep the softmax from saturating
TARGET_SEED = 20210503  # the default target is one fixed image, whatever the attack seed

Progress = Callable[[int, int], None]
LoadBatch = Callable[[list[int]], np.ndarray]


def eps_pixels(eps: float) -> int:
    """The budget in uint8 grey levels; the tolerance keeps 8/255 at 8 despite float rounding."""
    return math.floor(eps * 255 + 1e-6)


def check_settings(method: str, eps: float, steps: int, step_size: float | None, seed: int, min_psnr: float | None = None) -> None:
    """Reject settings that would silently do nothing or fail deep inside the loop."""
    if min_psnr is not None and not 20 <= min_psnr <= 80:
        raise MedforgetError(f"minimum PSNR {min_psnr} dB out of range: expected between 20 and 80 dB")
    if method not in METHODS:
        raise MedforgetError(f"unknown protection method {method!r}: expected one of {', '.join(METHODS)}")
    if not 1 / 255 <= eps <= 1:
        raise MedforgetError(f"eps {eps} out of range: expected between 1/255 (one grey level) and 1")
    if steps < 0:
        raise MedforgetError(f"steps must be >= 0, got {steps}")
    if step_size is not None and step_size <= 0:
        raise MedforgetError(f"step size must be > 0, got {step_size}")
    if seed < 0:
        raise MedforgetError(f"seed must be >= 0, got {seed}")


def plan_batches(shapes: Sequence[tuple[int, ...]], batch_size: int) -> list[list[int]]:
    """Group image indices by shape (first-seen order), then chunk: a tensor batch needs one shape."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, shape in enumerate(shapes):
        groups.setdefault(tuple(shape), []).append(index)
    return [group[i : i + batch_size] for group in groups.values() for i in range(0, len(group), batch_size)]


def default_target(size: tuple[int, int]) -> np.ndarray:
    """A fixed image unrelated to any scan: an 8-pixel colour checkerboard under seeded noise, (H, W, 3) uint8."""
    h, w = size
    rows, cols = np.indices((h, w)) // 8
    odd = ((rows + cols) % 2)[..., None]
    board = odd * np.array([230, 40, 200]) + (1 - odd) * np.array([20, 210, 60])
    noise = np.random.default_rng(TARGET_SEED).integers(-25, 26, (h, w, 3))
    return np.clip(board + noise, 0, 255).astype(np.uint8)


def decoy_image(size: tuple[int, int], index: int) -> np.ndarray:
    """The decoy of the `index`-th label: a grey checkerboard of its own cell size, levels and noise, drawn from
    (TARGET_SEED, index), (H, W, 3) uint8. Grey, so that a perturbation of a grey scan can move toward it."""
    h, w = size
    rng = np.random.default_rng([TARGET_SEED, index])
    cell = int(rng.integers(3, 12))
    rows, cols = np.indices((h, w)) // cell
    odd = (rows + cols) % 2
    low, high = sorted(rng.integers(0, 256, 2))
    grey = odd * high + (1 - odd) * low + rng.integers(-25, 26, (h, w))
    return np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[..., None], 3, axis=-1)


def to_pixels(batch: np.ndarray, device: torch.device) -> torch.Tensor:
    """(B, H, W, C) uint8 -> (B, C, H, W) float32 in [0, 1]."""
    return torch.tensor(batch, device=device).permute(0, 3, 1, 2).float() / 255  # a copy: PIL arrays are read-only


def quantise(clean: np.ndarray, adversarial: torch.Tensor, eps: float, min_psnr: float | None = None) -> np.ndarray:
    """Round to uint8 and re-clip, so the written integer change never exceeds floor(eps * 255); with
    `min_psnr`, shrink an image's change until its rounded version keeps at least that PSNR."""
    budget = eps_pixels(eps)
    change = adversarial.detach().permute(0, 2, 3, 1).cpu().double().numpy() * 255 - clean.astype(np.float64)
    base = clean.astype(np.int64)
    out = np.empty_like(clean)
    for i in range(len(clean)):
        scale = 1.0
        while True:
            pixels = np.clip(np.clip(np.rint(base[i] + scale * change[i]), base[i] - budget, base[i] + budget), 0, 255)
            if min_psnr is None or psnr_of(pixels - base[i]) >= min_psnr or scale < 1e-3:
                break
            scale *= 0.97
        out[i] = pixels.astype(np.uint8)
    return out


def l2_budget(shape: Sequence[int], min_psnr: float) -> float:
    """The largest L2 norm (pixels in [0, 1]) of a change to an image of `shape` that keeps `min_psnr`."""
    return math.sqrt(math.prod(shape)) * 10 ** (-min_psnr / 20)


class Protector:
    """One protection run: an objective fixed once (from the clean set where the method needs it), then PGD per batch."""

    def __init__(
        self,
        encoder: Encoder,
        method: str = "antithetical",
        eps: float = DEFAULT_EPS,
        steps: int = 10,
        step_size: float | None = None,
        seed: int = 0,
        target: Image.Image | None = None,
        random_start: bool = True,
        min_psnr: float | None = None,
    ) -> None:
        check_settings(method, eps, steps, step_size, seed, min_psnr)
        if target is not None and method != "targeted":
            raise MedforgetError(f"a target image only applies to the targeted method, not {method}")
        self.encoder, self.method, self.eps, self.steps, self.seed = encoder, method, eps, steps, seed
        # The uniform start alone changes pixels by eps/sqrt(3) RMS (about 34.8 dB PSNR at 8/255); a zero start
        # lets a small step size keep the change well below the budget on average (a less visible protection).
        self.random_start = random_start
        # A PSNR floor turns PGD into L2 steps inside both balls (L-inf eps and the floor's L2 radius): the
        # change goes where the gradient is large instead of +-eps everywhere (which alone costs 30 dB at 8/255).
        self.min_psnr = min_psnr
        self.step_size = eps / 4 if step_size is None else step_size
        self.anchor: torch.Tensor | None = None  # antithetical: clean mean direction; targeted: target embedding
        self.prototypes: torch.Tensor | None = None  # error_min: one unit row per pseudo-label; decoy: its decoy
        self.labels: torch.Tensor | None = None  # error_min, decoy: pseudo-label index of every image
        if method == "targeted":
            image = default_target(encoder.image_size) if target is None else np.asarray(target.convert("RGB"))
            self.anchor = self.embed(to_pixels(image[None], encoder.device))[0]

    @property
    def needs_clean_set(self) -> bool:
        return self.method in ("antithetical", "error_min", "decoy")

    def embed(self, pixels: torch.Tensor) -> torch.Tensor:
        """Unit embeddings without gradients, for the clean statistics."""
        with torch.no_grad():
            return F.normalize(self.encoder.embed(pixels), dim=-1)

    def fit(self, load: LoadBatch, batches: Sequence[list[int]], labels: Sequence[str]) -> None:
        """Fix the objective from the clean images: their mean direction, or per-label prototypes.

        ``labels`` has one pseudo-label per image (patient id, or the image itself); fewer than two distinct
        labels would make the error-minimising loss constant, so then every image is its own label.
        """
        clean: torch.Tensor | None = None
        for indices in batches:
            rows = self.embed(to_pixels(load(indices), self.encoder.device))
            clean = rows.new_zeros(len(labels), rows.shape[1]) if clean is None else clean
            clean[indices] = rows
        if clean is None:
            raise MedforgetError("nothing to protect: no images selected")
        if self.method == "antithetical":
            self.anchor = F.normalize(clean.mean(0), dim=0)
            return
        names = list(labels) if len(set(labels)) > 1 else [str(i) for i in range(len(labels))]
        classes = {name: k for k, name in enumerate(dict.fromkeys(names))}
        self.labels = torch.tensor([classes[name] for name in names], device=clean.device)
        if self.method == "decoy":  # every image of label k is pulled toward decoy k: one shortcut per patient
            decoys = np.stack([decoy_image(self.encoder.image_size, k) for k in range(len(classes))])
            self.prototypes = self.embed(to_pixels(decoys, self.encoder.device))
            return
        sums = clean.new_zeros(len(classes), clean.shape[1]).index_add_(0, self.labels, clean)
        self.prototypes = F.normalize(sums, dim=-1)

    def loss(self, embeddings: torch.Tensor, indices: list[int]) -> torch.Tensor:
        """Per-image loss that PGD minimises (see docs/protect.md for the formulas)."""
        if self.method == "error_min":
            if self.prototypes is None or self.labels is None:
                raise RuntimeError("error_min needs fit() on the clean set first")
            logits = PROTOTYPE_SCALE * embeddings @ self.prototypes.T
            return F.cross_entropy(logits, self.labels[indices], reduction="none")
        if self.method == "decoy":
            if self.prototypes is None or self.labels is None:
                raise RuntimeError("decoy needs fit() on the clean set first")
            return -(embeddings * self.prototypes[self.labels[indices]]).sum(-1)
        if self.anchor is None:
            raise RuntimeError(f"{self.method} needs fit() on the clean set first")
        similarity = embeddings @ self.anchor
        return similarity if self.method == "antithetical" else -similarity

    def perturb(self, indices: list[int], batch: np.ndarray) -> np.ndarray:
        """PGD from a seeded uniform start (or from zero): sign steps, or with a PSNR floor L2 steps of RMS
        `step_size` projected onto the floor's L2 ball; returns the protected uint8 batch."""
        x = to_pixels(batch, self.encoder.device)
        shape = batch.shape[1:]
        if self.random_start:
            start = np.stack([np.random.default_rng([self.seed, i]).uniform(-self.eps, self.eps, shape) for i in indices])
            delta = (x + torch.from_numpy(start).permute(0, 3, 1, 2).to(x)).clamp(0, 1) - x
        else:
            delta = torch.zeros_like(x)
        for _ in range(self.steps):
            delta.requires_grad_(True)
            loss = self.loss(F.normalize(self.encoder.embed(x + delta), dim=-1), indices).sum()
            (grad,) = torch.autograd.grad(loss, delta)
            delta = descend(x, delta, grad, self.eps, self.step_size, self.min_psnr)
        return quantise(batch, x + delta, self.eps, self.min_psnr)


def descend(x: torch.Tensor, delta: torch.Tensor, grad: torch.Tensor, eps: float, step_size: float,
            min_psnr: float | None) -> torch.Tensor:
    """One projected step against `grad` for a (B, C, H, W) batch: a sign step of `step_size` inside the eps box,
    or with a PSNR floor an L2 step of RMS `step_size` per pixel, projected onto the box and the floor's L2 ball;
    the result keeps x + delta within [0, 1]."""
    shape = x.shape[1:]
    if min_psnr is None:
        step = grad.sign()
    else:
        norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12)[:, None, None, None]
        step = grad / norm * math.sqrt(math.prod(shape))
    delta = (delta.detach() - step_size * step).clamp(-eps, eps)
    if min_psnr is not None:
        radius = l2_budget(shape, min_psnr)
        norm = delta.flatten(1).norm(dim=1)[:, None, None, None]
        delta = delta * (radius / norm.clamp_min(radius))
    return (x + delta).clamp(0, 1) - x


def protect_batches(
    protector: Protector,
    load: LoadBatch,
    batches: Sequence[list[int]],
    labels: Sequence[str],
    progress: Progress | None = None,
) -> Iterator[tuple[list[int], np.ndarray, np.ndarray]]:
    """Fit if needed, then yield ``(indices, clean batch, protected batch)`` per batch, reporting ``(done, total)``."""
    if protector.needs_clean_set:
        protector.fit(load, batches, labels)
    total, done = sum(len(b) for b in batches), 0
    for indices in batches:
        clean = load(indices)
        protected = protector.perturb(indices, clean)
        done += len(indices)
        if progress is not None:
            progress(done, total)
        yield indices, clean, protected

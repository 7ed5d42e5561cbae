"""Vision warm-up for the embedded default: teach a from-scratch vision tower what the scans show.

A VLM trained from random weights on question answering alone learns the text prior first and then
ignores its image tokens: the projected image features grow into one large shared vector and the
vision tower's gradients vanish (measured on `demo`: answers independent of the image after a full
pretraining epoch). Real VLMs start from a pretrained encoder; this stage plays that role. The tower is
trained directly, through small linear heads on its mean-pooled patch features, to read each scan's
ground truth (modality, region, finding, laterality, quality, marker shape and position) and to map
scans of one patient close together (supervised contrastive loss), on `pretrain` patients only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import ProcessorMixin

from medforget.models.parts import vision_parts
from medforget.train.augment import random_shift
from medforget.world.storage import Benchmark

TARGETS = ("modality", "region", "finding", "laterality", "quality", "marker_shape", "marker_slot")


@dataclass(frozen=True)
class VisionWarmup:
    epochs: int = 30
    batch_size: int = 64
    lr: float = 3e-3
    temperature: float = 0.2
    contrastive_weight: float = 0.3  # of the same-patient loss against the heads' (1: attributes were learnt worse)
    seed: int = 0


def vision_tower(model: nn.Module) -> nn.Module:
    return vision_parts(model).tower_module(model)


def scan_pixels(bench: Benchmark, processor: ProcessorMixin, scan_ids: list[str]) -> torch.Tensor:
    images = [bench.image(s).convert("RGB") for s in scan_ids]
    return processor.image_processor(images, return_tensors="pt")["pixel_values"]


def _labels(rows: list[dict]) -> dict[str, torch.Tensor]:
    out = {}
    for name in (*TARGETS, "patient_id"):
        values = [str(r[name]) for r in rows]
        vocab = {v: i for i, v in enumerate(sorted(set(values)))}
        out[name] = torch.tensor([vocab[v] for v in values])
    return out


def warm_up_vision(model: nn.Module, processor: ProcessorMixin, bench: Benchmark, cfg: VisionWarmup) -> dict:
    """Train the vision tower in place on the `pretrain` group's scans; returns accuracies on `general` scans."""
    tower = vision_tower(model)
    scans = [r for r in bench["scans"].remove_columns("image").to_list()]
    train_rows = [r for r in scans if r["group"] == "pretrain"]
    check_rows = [r for r in scans if r["group"] == "general"]
    pixels = scan_pixels(bench, processor, [r["scan_id"] for r in train_rows])
    labels = _labels(train_rows)
    width = tower.config.hidden_size
    with torch.random.fork_rng():  # the heads' start comes from the seed, not from whatever ran before in this process
        torch.manual_seed(cfg.seed)
        heads = nn.ModuleDict({name: nn.Linear(width, int(labels[name].max()) + 1) for name in TARGETS})
    params = list(tower.parameters()) + list(heads.parameters())
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.01)
    steps = cfg.epochs * max(1, len(train_rows) // cfg.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=steps, pct_start=0.1)
    g = torch.Generator().manual_seed(cfg.seed)
    tower.train()
    began, step = time.perf_counter(), 0
    while step < steps:
        perm = torch.randperm(len(train_rows), generator=g)
        for start in range(0, len(perm) - cfg.batch_size + 1, cfg.batch_size):
            idx = perm[start:start + cfg.batch_size]
            feats = pooled_features(tower, random_shift(pixels[idx], g))
            loss = sum(F.cross_entropy(heads[n](feats), labels[n][idx]) for n in TARGETS)
            loss = loss + cfg.contrastive_weight * supervised_contrastive(feats, labels["patient_id"][idx], cfg.temperature)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            step += 1
            if step >= steps:
                break
    tower.eval()
    return {"steps": steps, "seconds": round(time.perf_counter() - began, 1), "scans": len(train_rows),
            **_check(tower, heads, bench, processor, train_rows, check_rows)}


def pooled_features(tower: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    hidden = tower(pixel_values=pixels).last_hidden_state[:, 1:]  # patch tokens, as LLaVA reads them
    return hidden.mean(1)


def supervised_contrastive(feats: torch.Tensor, groups: torch.Tensor, temperature: float) -> torch.Tensor:
    """SupCon (Khosla et al. 2020): pull together the scans of one patient, push apart the others."""
    z = F.normalize(feats, dim=-1)
    sim = z @ z.T / temperature
    eye = torch.eye(len(z), dtype=torch.bool)
    sim = sim.masked_fill(eye, float("-inf"))
    positive = (groups[:, None] == groups[None, :]) & ~eye
    has = positive.any(1)
    if not has.any():
        return feats.new_zeros(())
    log_prob = sim.log_softmax(1).masked_fill(~positive, 0.0)
    return -(log_prob.sum(1)[has] / positive.sum(1)[has]).mean()


@torch.no_grad()
def _check(tower, heads, bench, processor, train_rows, check_rows) -> dict:
    """Head accuracy on unseen `general` scans, and nearest-neighbour patient identification among them."""
    if not check_rows:
        return {}
    pixels = scan_pixels(bench, processor, [r["scan_id"] for r in check_rows])
    feats = pooled_features(tower, pixels)
    out = {}
    for name in TARGETS:
        vocab = sorted({str(r[name]) for r in train_rows})
        truth = torch.tensor([vocab.index(str(r[name])) if str(r[name]) in vocab else -1 for r in check_rows])
        out[f"acc_{name}"] = round(float((heads[name](feats).argmax(1) == truth).float().mean()), 3)
    z = F.normalize(feats, dim=-1)
    sim = (z @ z.T).fill_diagonal_(-2)
    pids = [r["patient_id"] for r in check_rows]
    out["nn_same_patient"] = round(sum(pids[j] == pids[i] for i, j in enumerate(sim.argmax(1).tolist())) / len(pids), 3)
    return out

"""MANU, modality-aware neuron unlearning (Liu et al. 2025, "Modality-Aware Neuron Pruning for Unlearning
in Multimodal Large Language Models", ACL 2025): training-free, prune the feed-forward neurons that matter
to the forget set more than to the retain set.

For each feed-forward neuron j of the last `layers` blocks of the language model and of the vision tower,
its importance on a set is the mean |activation| (the input of the block's output projection) over the
set's positions: every attended token for the language model, every patch for the tower. The score is
I_forget(j) / (I_retain(j) + eps), with retain = every retain row for the language model and the retain
rows with a scan for the tower (each part judged on the data it reads); in each block the `fraction` of
neurons with the highest score are pruned, by zeroing their column of the output projection.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from torch import nn

from medforget.data.collate import collated_batches, pad_token_id
from medforget.data.formatting import Example
from medforget.errors import MedforgetError
from medforget.methods.base import Job, Method, at_least
from medforget.methods.registry import register
from medforget.models.loading import load_model, save_model
from medforget.models.parts import decoder_layers, mlp_output, vision_layers
from medforget.train.config import TrainConfig
from medforget.train.examples import format_rows

EPS = 1e-8


@dataclass(frozen=True)
class MANUParams:
    fraction: float = 0.3  # share of each chosen block's neurons pruned (the paper prunes ~10 %; see docs/methods.md)
    layers: int = 4  # how many of the last blocks of each part are pruned
    rows: int = 256  # rows of each set the importances are measured on

    def __post_init__(self) -> None:
        at_least("fraction", self.fraction, 0, strict=True)
        if self.fraction >= 1:
            raise MedforgetError(f"fraction must be < 1, got {self.fraction}")
        at_least("layers", self.layers, 1)
        at_least("rows", self.rows, 1)


def neuron_importance(model: nn.Module, projections: dict[str, nn.Linear], batches: list[dict[str, torch.Tensor]],
                      text: set[str]) -> dict[str, torch.Tensor]:
    """Mean |input| of each projection per input feature (neuron) over the batches' positions: attended
    tokens for the projections named in `text`, every position for the others (vision patches)."""
    sums = {name: torch.zeros(proj.in_features) for name, proj in projections.items()}
    counts = dict.fromkeys(projections, 0)
    current: dict[str, torch.Tensor] = {}

    def hook(name: str):
        def record(module: nn.Module, args: tuple) -> None:
            act = args[0].detach().float().abs()
            if name in text:
                keep = current["attention_mask"].bool()
                act = act[keep]
            act = act.reshape(-1, act.shape[-1])
            sums[name] += act.sum(dim=0).cpu()
            counts[name] += act.shape[0]
        return record

    handles = [proj.register_forward_pre_hook(hook(name)) for name, proj in projections.items()]
    try:
        with torch.no_grad():
            for batch in batches:
                current.update(batch)
                model.base_model(**{k: v for k, v in batch.items() if k != "labels"}, use_cache=False)
    finally:
        for handle in handles:
            handle.remove()
    return {name: sums[name] / max(counts[name], 1) for name in projections}


def prune_scores(forget: torch.Tensor, retain: torch.Tensor) -> torch.Tensor:
    """I_forget / (I_retain + eps) per neuron."""
    return forget / (retain + EPS)


def pruned_neurons(scores: torch.Tensor, fraction: float) -> torch.Tensor:
    """Indices of the round(fraction * n) highest-scoring neurons (at least one)."""
    k = max(1, round(fraction * scores.numel()))
    return scores.topk(k).indices


@register
class MANU(Method):
    name = "manu"
    summary = "training-free: zero the last blocks' feed-forward neurons most active on forget relative to retain"
    Params = MANUParams
    needs_retain = True
    training_free = True
    train_defaults = TrainConfig(batch_size=16, save_every=0)  # only batch_size and seed are used: the measuring batches and rows

    def run(self, job: Job) -> dict:
        model, processor = load_model(job.model_dir)
        model.eval()
        draw = random.Random(job.cfg.seed)
        rows = job.params.rows
        forget_rows = draw.sample(job.forget, min(rows, len(job.forget)))
        retain_rows = draw.sample(job.retain, min(rows, len(job.retain)))
        pad, size = pad_token_id(processor), job.cfg.batch_size

        def batches(rows: list[dict]) -> list[dict[str, torch.Tensor]]:
            examples: list[Example] = format_rows(job.bench, rows, processor)
            return collated_batches(examples, size, pad)

        text = {f"language.{i}": mlp_output(block) for i, block in enumerate(decoder_layers(model))}
        vision = {f"vision.{i}": mlp_output(block) for i, block in enumerate(vision_layers(model))}
        chosen = {**dict(list(text.items())[-job.params.layers:]), **dict(list(vision.items())[-job.params.layers:])}
        text_names = {n for n in chosen if n.startswith("language.")}
        language = {n: p for n, p in chosen.items() if n in text_names}
        tower = {n: p for n, p in chosen.items() if n not in text_names}
        forget = batches(forget_rows)
        importance_forget = neuron_importance(model, chosen, forget, text_names)
        importance_retain = {
            **neuron_importance(model, language, batches(retain_rows), text_names),
            **neuron_importance(model, tower, batches([r for r in retain_rows if r["scan_ids"]]), set()),
        }
        pruned = {}
        with torch.no_grad():
            for name, proj in chosen.items():
                index = pruned_neurons(prune_scores(importance_forget[name], importance_retain[name]), job.params.fraction)
                proj.weight[:, index] = 0
                pruned[name] = len(index)
        save_model(model, processor, job.out)
        return {"steps": 0, "pruned_neurons": pruned, "forget_rows_measured": len(forget_rows), "retain_rows_measured": len(retain_rows)}

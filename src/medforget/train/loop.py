"""The supervised training loop shared by pretraining, fine-tuning and (later) unlearning.

Plain Python on accelerate: one process by default, several under `accelerate launch` (DDP, FSDP or
DeepSpeed, chosen by the launch config). Data order and augmentation derive from (seed, step) alone, so a
run killed at any point resumes from its last checkpoint to the same result as an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, DistributedType, set_seed
from peft import PeftModel
from torch import nn
from transformers import PreTrainedModel, ProcessorMixin

from medforget.data.collate import collate, pad_token_id
from medforget.data.formatting import IGNORE_INDEX, Example
from medforget.errors import MedforgetError
from medforget.models.loading import save_model
from medforget.models.loss import answer_token_loss
from medforget.models.parts import freeze_vision_tower
from medforget.models.weights import load_state, save_state
from medforget.train.augment import augment
from medforget.train.config import TrainConfig

CHECKPOINT_DIR = ".checkpoint"
RECORD_FILE = "training.json"
Reporter = Callable[[dict], None]  # receives {"step", "total", "loss", "samples_per_s", "lr", ...objective logs}
Batches = dict[str, dict[str, torch.Tensor]]  # one collated batch per stream ("train", or "forget" and "retain")
# An objective maps (model, batches, frozen reference model or None) to (loss, numbers to log).
Objective = Callable[[nn.Module, Batches, "nn.Module | None"], tuple[torch.Tensor, dict[str, float]]]


def is_main_process() -> bool:
    """Rank 0, or the only process: the one that writes shared files under `accelerate launch`
    (which sets RANK in every process it starts), usable before any Accelerator exists."""
    return int(os.environ.get("RANK", "0")) == 0


def sft_objective(model: nn.Module, batches: Batches, reference: nn.Module | None) -> tuple[torch.Tensor, dict[str, float]]:
    """Supervised fine-tuning: the answer-token NLL of the "train" stream."""
    return answer_token_loss(model, batches["train"]), {}


class Trainable(nn.Module):
    """The model, its objective and an optional frozen reference, with the objective as forward, so that
    DDP/FSDP wrap the very call that trains (the reference is frozen and never receives gradients)."""

    def __init__(self, model: PreTrainedModel | PeftModel, objective: Objective, reference: nn.Module | None = None) -> None:
        super().__init__()
        self.model = model
        self.objective = objective
        self.reference = reference
        if reference is not None:
            reference.requires_grad_(False).eval()
        self._no_split_modules = getattr(model, "_no_split_modules", None)  # FSDP auto-wrap looks here

    def forward(self, batches: Batches) -> tuple[torch.Tensor, dict[str, float]]:
        return self.objective(self.model, batches, self.reference)

    def train(self, mode: bool = True) -> "Trainable":
        super().train(mode)
        if self.reference is not None:
            self.reference.eval()  # the reference stays deterministic (no dropout) while the model trains
        return self


def model_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The trained model's weights from a Trainable state dict (the frozen reference is not saved)."""
    return {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}


@dataclass
class TrainResult:
    steps: int
    samples: int
    seconds: float
    losses: list[float] = field(default_factory=list)  # mean loss of each optimizer step run in this call
    resumed_from: int = 0


def make_accelerator(cfg: TrainConfig) -> Accelerator:
    mixed = cfg.mixed_precision
    if mixed == "auto":
        mixed = "bf16" if torch.cuda.is_available() else "no"
    # Some parameters legitimately get no gradient in a step (CLIP's unused pooler norm, the vision tower on a
    # text-only batch), so DDP must look for them instead of waiting for their reduction.
    ddp = DistributedDataParallelKwargs(find_unused_parameters=True)
    return Accelerator(gradient_accumulation_steps=cfg.grad_accum, mixed_precision=mixed, kwargs_handlers=[ddp])


def cosine_schedule(optimizer: torch.optim.Optimizer, total: int, cfg: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    warmup = max(1, int(cfg.warmup_ratio * total)) if cfg.warmup_ratio > 0 else 0

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def micro_batches(n: int, cfg: TrainConfig, world: int, rank: int, start: int, count: int) -> Iterator[list[int]]:
    """Indices of micro-batches `start`..`start+count` for this process: each epoch is a fresh permutation
    seeded by (seed, epoch), cut into global batches, each shared out between processes."""
    per_rank = rank_batch_size(n, cfg, world)
    global_batch = per_rank * world
    per_epoch = n // global_batch
    for k in range(start, start + count):
        epoch, j = divmod(k, per_epoch)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))
        chunk = perm[j * global_batch:(j + 1) * global_batch]
        yield chunk[rank * per_rank:(rank + 1) * per_rank].tolist()


def length_groups(indices: list[int], lengths: Sequence[int], min_saving: float = 0.2) -> list[list[int]]:
    """Split one batch into a short and a long group when that saves at least `min_saving` of the padded
    compute (image rows are ~3x longer than text rows on the embedded default). The groups are run one after
    the other within the same optimizer step, so the gradient is that of the whole batch, minus the padding.
    (Sorting whole batches by length instead made batches of near-identical rows and hurt learning.)"""
    ordered = sorted(indices, key=lambda i: lengths[i])
    n, longest = len(ordered), lengths[ordered[-1]]
    best_k, best_cost = n, n * longest
    for k in range(1, n):
        cost = k * lengths[ordered[k - 1]] + (n - k) * longest
        if cost < best_cost:
            best_k, best_cost = k, cost
    if best_k == n or best_cost > (1 - min_saving) * n * longest:
        return [indices]
    return [ordered[:best_k], ordered[best_k:]]


def rank_batch_size(n: int, cfg: TrainConfig, world: int) -> int:
    """The configured batch size, shrunk when there are fewer examples than one global batch."""
    if n < world:
        raise MedforgetError(f"cannot train on {n} examples with {world} processes")
    return min(cfg.batch_size, n // world)


def total_steps(n_examples: int, cfg: TrainConfig, world: int) -> int:
    if cfg.max_steps:
        return cfg.max_steps
    per_epoch = n_examples // (rank_batch_size(n_examples, cfg, world) * world)
    return max(1, math.ceil(cfg.epochs * per_epoch / cfg.grad_accum))


def train(
    model: PreTrainedModel | PeftModel, processor: ProcessorMixin, streams: Sequence[Example] | dict[str, Sequence[Example]],
    cfg: TrainConfig, out_dir: Path, *, objective: Objective = sft_objective, primary: str = "train",
    reference: nn.Module | None = None, report: Reporter | None = None, accelerator: Accelerator | None = None,
) -> TrainResult:
    """Train and write the final model (safetensors) and a training record to `out_dir`.

    `streams` maps a name to its examples (a plain sequence means {"train": examples}); every optimizer
    micro-step draws one batch from each stream, interleaved, and epochs are counted on `primary`.
    """
    out_dir = Path(out_dir)
    streams = {"train": streams} if not isinstance(streams, dict) else streams
    if primary not in streams:
        raise MedforgetError(f"primary stream {primary!r} is not among {sorted(streams)}")
    accelerator = accelerator or make_accelerator(cfg)
    set_seed(cfg.seed)
    world, rank = accelerator.num_processes, accelerator.process_index
    steps = total_steps(len(streams[primary]), cfg, world)
    if not cfg.train_vision:
        freeze_vision_tower(model)
    wrapper = Trainable(model, objective, reference)
    optimizer = torch.optim.AdamW([p for p in wrapper.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = cosine_schedule(optimizer, steps, cfg)
    wrapper, optimizer = accelerator.prepare(wrapper, optimizer)
    start = _resume(out_dir / CHECKPOINT_DIR, wrapper, optimizer, scheduler, accelerator, cfg)
    pad = pad_token_id(processor)
    result = TrainResult(steps=steps, samples=0, seconds=0.0, resumed_from=start)
    began = time.perf_counter()
    step, window_loss, window_samples, window_start = start, 0.0, 0, time.perf_counter()
    wrapper.train()
    first, count = start * cfg.grad_accum, (steps - start) * cfg.grad_accum
    plans = {
        name: micro_batches(len(examples), replace(cfg, seed=cfg.seed + 1_000 * n), world, rank, first, count)
        for n, (name, examples) in enumerate(sorted(streams.items()))
    }
    logs: dict[str, float] = {}
    # Plain SFT batches are split by length (see length_groups); other objectives see whole batches.
    split = objective is sft_objective and len(streams) == 1
    lengths = [example.tokens["input_ids"].shape[0] for example in streams[primary]] if split else []
    answers = [int((example.tokens["labels"] != IGNORE_INDEX).sum()) for example in streams[primary]] if split else []
    for k in range(count):
        drawn = {name: next(plan) for name, plan in plans.items()}
        groups = length_groups(drawn[primary], lengths) if split else [drawn[primary]]
        total_answers = sum(answers[i] for i in drawn[primary]) if split else 1
        with accelerator.accumulate(wrapper):
            loss_value = 0.0
            for g, group in enumerate(groups):
                batches = {}
                for n, name in enumerate(plans):
                    batch = collate([streams[name][i] for i in (group if name == primary else drawn[name])], pad_token_id=pad, padding_side="right")
                    if cfg.augment:
                        augment(batch, cfg.seed * 7_919 + (first + k) * 31 + n + 1_009 * g)
                    batches[name] = {key: value.to(accelerator.device) for key, value in batch.items()}
                weight = sum(answers[i] for i in group) / total_answers if split else 1.0
                with accelerator.no_sync(wrapper) if g < len(groups) - 1 else contextlib.nullcontext():
                    loss, logs = wrapper(batches)
                    accelerator.backward(loss * weight)
                loss_value += float(loss.detach()) * weight
            window_loss += loss_value / cfg.grad_accum
            window_samples += len(drawn[primary]) * world
            if accelerator.sync_gradients:
                if cfg.max_grad_norm:
                    accelerator.clip_grad_norm_(wrapper.parameters(), cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
                step += 1
                result.losses.append(window_loss)
                now = time.perf_counter()
                if report and accelerator.is_main_process:
                    report({
                        "step": step, "total": steps, "loss": window_loss,
                        "samples_per_s": window_samples / max(now - window_start, 1e-9), "lr": scheduler.get_last_lr()[0],
                        **{key: float(value) for key, value in logs.items()},
                    })
                result.samples += window_samples
                window_loss, window_samples, window_start = 0.0, 0, now
                if cfg.save_every and step % cfg.save_every == 0 and step < steps:
                    _save_checkpoint(out_dir / CHECKPOINT_DIR, wrapper, optimizer, scheduler, accelerator, step, cfg)
    result.seconds = time.perf_counter() - began
    _save_final(out_dir, wrapper, processor, accelerator, cfg, result)
    return result


def _unwrapped(wrapper: nn.Module, accelerator: Accelerator) -> PreTrainedModel | PeftModel:
    return accelerator.unwrap_model(wrapper).model


def _fingerprint(cfg: TrainConfig) -> dict:
    return {k: v for k, v in cfg.to_dict().items() if k not in ("save_every",)}


def _save_checkpoint(folder: Path, wrapper, optimizer, scheduler, accelerator: Accelerator, step: int, cfg: TrainConfig) -> None:
    """Weights as safetensors (tied ones once), optimizer tensors with torch.save (read back with weights_only=True),
    state as JSON; written beside the last checkpoint and swapped in, so a crash leaves one whole checkpoint."""
    state = accelerator.get_state_dict(wrapper)
    if accelerator.is_main_process:
        tmp, old = folder.with_name(folder.name + ".tmp"), folder.with_name(folder.name + ".old")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            tmp.mkdir(parents=True)
            save_state(model_state(state), tmp / "model.safetensors")
            if accelerator.distributed_type in (DistributedType.NO, DistributedType.MULTI_CPU, DistributedType.MULTI_GPU):
                torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
            (tmp / "state.json").write_text(json.dumps({"step": step, "scheduler": scheduler.state_dict()["last_epoch"], "config": _fingerprint(cfg)}))
            if folder.exists():
                shutil.rmtree(old, ignore_errors=True)
                os.replace(folder, old)
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()


def _resume(folder: Path, wrapper, optimizer, scheduler, accelerator: Accelerator, cfg: TrainConfig) -> int:
    """Load the last checkpoint if it belongs to this very configuration; return the step to continue from."""
    if not (folder / "state.json").is_file():
        folder = folder.with_name(folder.name + ".old")  # killed between the two renames of _save_checkpoint
    state_file = folder / "state.json"
    if not state_file.is_file():
        return 0
    state = json.loads(state_file.read_text())
    if state.get("config") != json.loads(json.dumps(_fingerprint(cfg))):
        accelerator.print(f"ignoring checkpoint in {folder}: it was made with other training options")
        return 0
    weights = load_state(folder / "model.safetensors")
    accelerator.unwrap_model(wrapper).model.load_state_dict(weights)
    if (folder / "optimizer.pt").is_file():
        optimizer.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=True, map_location="cpu"))
    with warnings.catch_warnings():  # fast-forwarding the schedule without optimizer steps is intended
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(state["scheduler"]):
            scheduler.step()
    accelerator.print(f"resuming from step {state['step']} ({folder})")
    return int(state["step"])


def _save_final(out_dir: Path, wrapper, processor: ProcessorMixin, accelerator: Accelerator, cfg: TrainConfig, result: TrainResult) -> None:
    """Model and processor into `out_dir`, then the record, then drop the checkpoint: the record marks completion."""
    model = _unwrapped(wrapper, accelerator)
    state = None if isinstance(model, PeftModel) else accelerator.get_state_dict(wrapper)
    if accelerator.is_main_process:
        out_dir.mkdir(parents=True, exist_ok=True)
        if state is None:
            save_model(model, processor, out_dir)
        else:
            model.save_pretrained(out_dir, state_dict=model_state(state))
            processor.save_pretrained(out_dir)
        record = {
            "config": cfg.to_dict(), "steps": result.steps, "samples": result.samples, "seconds": round(result.seconds, 2),
            "final_loss": result.losses[-1] if result.losses else None, "processes": accelerator.num_processes,
            "resumed_from": result.resumed_from,
        }
        (out_dir / RECORD_FILE).write_text(json.dumps(record, indent=2, default=str) + "\n")
        for suffix in ("", ".tmp", ".old"):
            shutil.rmtree(out_dir / (CHECKPOINT_DIR + suffix), ignore_errors=True)
    accelerator.wait_for_everyone()

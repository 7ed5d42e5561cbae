"""What an unlearning method is: typed hyperparameters, a relabelling hook, a loss, and how it trains.

Most methods are a loss on interleaved forget/retain batches (`LossMethod`), trained by the shared loop
in `medforget.train.loop`; methods with another procedure (SMFA's two adapters, the retrain oracle)
override `run`. Everything a run needs is checked by `medforget.methods.unlearn` and handed over as a
`Job`, so a method never sees an unchecked input.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from transformers import ProcessorMixin

from medforget.data.formatting import Example
from medforget.errors import MedforgetError
from medforget.models.loading import load_model
from medforget.models.loss import answer_token_loss
from medforget.train.config import TrainConfig
from medforget.train.examples import format_rows
from medforget.train.loop import Batches, Reporter, TrainResult, make_accelerator, train
from medforget.world.storage import Benchmark

Logs = dict[str, float]


@dataclass
class Job:
    """One checked unlearning run: the fine-tuned model, the rows, the options and where to write."""

    model_dir: Path
    bench: Benchmark
    scenario: str
    forget: list[dict]
    retain: list[dict]  # empty unless the method needs_retain
    params: Any  # the method's Params instance
    cfg: TrainConfig
    out: Path
    vanilla: dict  # the fine-tuned model's training.json
    report: Reporter | None = None


class Method(ABC):
    """An unlearning method. Subclasses set the class attributes and are added with `registry.register`."""

    name: ClassVar[str]
    summary: ClassVar[str]  # one line for `medforget methods`
    Params: ClassVar[type]  # frozen dataclass of typed hyperparameters with defaults
    needs_retain: ClassVar[bool] = False
    needs_reference: ClassVar[bool] = False  # a frozen copy of the fine-tuned model
    train_defaults: ClassVar[TrainConfig | None] = None  # None: derived from the fine-tuned model's record
    training_free: ClassVar[bool] = False  # edits the weights without an optimiser (train_defaults only size its batches)
    needs_world: ClassVar[bool] = False  # reads a generated world (pretraining-only patients, record fields): not for `run --data`

    def default_config(self, vanilla: dict) -> TrainConfig:
        """Training options before `--set` overrides; `vanilla` is the fine-tuned model's training record.
        The vision tower trains only if it trained during fine-tuning: a tower frozen there (warmed up
        on its own) is the image reader everything else was fitted to."""
        if self.train_defaults is None:
            raise NotImplementedError(f"{self.name} sets neither train_defaults nor default_config")
        return replace(self.train_defaults, train_vision=vanilla.get("config", {}).get("train_vision", self.train_defaults.train_vision))

    def check(self, job: Job) -> None:
        """Refuse options the method cannot run with, before any output is written (default: all fine)."""

    def prepare_forget(self, rows: list[dict]) -> list[dict]:
        """The forget rows as trained on. By default the memorised answer itself (the corrupted one for
        incorrect knowledge), which is what gradient-ascent methods push down."""
        return rows

    @abstractmethod
    def run(self, job: Job) -> dict:
        """Write the unlearned model into `job.out`; return what the run record should hold (steps, loss)."""


class LossMethod(Method):
    """A method defined by its loss on one "forget" (and, if needed, one "retain") batch per step."""

    train_defaults: ClassVar[TrainConfig]

    @abstractmethod
    def objective(self, model: nn.Module, batches: Batches, reference: nn.Module | None, hp: Any) -> tuple[torch.Tensor, Logs]:
        """The loss to minimise for one step, and numbers to log."""

    def prepare_model(self, model: nn.Module, processor: ProcessorMixin, streams: dict[str, list[Example]], job: Job) -> dict:
        """Set up the loaded model before training (which weights train, gradient masks); returns what the
        run record should add. Default: nothing."""
        return {}

    def streams(self, job: Job, processor: ProcessorMixin) -> dict[str, list[Example]]:
        streams = {"forget": format_rows(job.bench, self.prepare_forget(job.forget), processor)}
        if self.needs_retain:
            streams["retain"] = format_rows(job.bench, job.retain, processor)
        return streams

    def run(self, job: Job) -> dict:
        # The reference is bound into the objective instead of passed to train(): the loop would wrap it
        # into the trained module, whose saved state then holds the reference's weights as well.
        accelerator = make_accelerator(job.cfg)
        torch.manual_seed(job.cfg.seed)  # LoRA initialisation, when cfg.lora is set
        model, processor = load_model(job.model_dir, lora=job.cfg.lora, device=accelerator.device)
        reference = None
        if self.needs_reference:
            reference = load_model(job.model_dir, device=accelerator.device)[0].requires_grad_(False).eval()

        def objective(model: nn.Module, batches: Batches, _: nn.Module | None) -> tuple[torch.Tensor, Logs]:
            return self.objective(model, batches, reference, job.params)

        streams = self.streams(job, processor)
        extras = self.prepare_model(model, processor, streams, job)
        result = train(model, processor, streams, job.cfg, job.out, objective=objective,
                       primary="forget", report=job.report, accelerator=accelerator)
        return {**summary(result), **extras}


def summary(result: TrainResult) -> dict:
    return {"steps": result.steps, "samples": result.samples, "final_loss": result.losses[-1] if result.losses else None,
            "resumed_from": result.resumed_from}


def sequence_logprob(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """log p(answer | prompt) per sample, summed over its answer tokens, shape (batch,)."""
    return -answer_token_loss(model, batch, reduction="sum_per_sample")


def reference_logprob(reference: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """`sequence_logprob` of the frozen reference, without building a graph."""
    with torch.no_grad():
        return sequence_logprob(reference, batch)


def at_least(name: str, value: float, low: float, *, strict: bool = False) -> None:
    """Hyperparameter range check with a one-line user error."""
    if value < low or (strict and value == low):
        raise MedforgetError(f"{name} must be {'>' if strict else '>='} {low}, got {value}")

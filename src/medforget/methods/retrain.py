"""The retrain oracle: fine-tune the base model again on `train` without the forget rows.

Exact unlearning by definition, and the reference every approximate method is measured against. It
starts from the model the vanilla was fine-tuned FROM (its training.json "base_model", or `base_model=`),
with the vanilla's own recorded training options, so the only difference is the data left out.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from medforget.errors import MedforgetError
from medforget.methods.base import Job, Method, summary
from medforget.methods.registry import register
from medforget.models.lora import LoraSettings
from medforget.train.config import TrainConfig
from medforget.train.stages import run_stage

EXCLUDE = {"privacy": ["forget_privacy"], "incorrect": ["forget_incorrect"], "both": ["forget"]}


@dataclass(frozen=True)
class RetrainParams:
    base_model: str = ""  # empty: the "base_model" recorded in the vanilla model's training.json


def recorded_config(vanilla: dict) -> TrainConfig:
    """The TrainConfig a training record was made with (options this version does not know are dropped)."""
    known = {f.name for f in fields(TrainConfig)}
    values = {k: v for k, v in vanilla.get("config", {}).items() if k in known}
    if values.get("lora"):
        values["lora"] = LoraSettings(**values["lora"])
    return TrainConfig(**values)


@register
class Retrain(Method):
    name = "retrain"
    summary = "oracle: fine-tune the base model on train minus the forget split(s)"
    Params = RetrainParams
    def default_config(self, vanilla: dict) -> TrainConfig:
        return recorded_config(vanilla)

    def base_model(self, job: Job) -> str:
        return job.params.base_model or str(job.vanilla.get("base_model") or "")

    def check(self, job: Job) -> None:
        if not self.base_model(job):
            raise MedforgetError(f"{job.model_dir}/training.json names no base_model: pass --set base_model=DIR")

    def run(self, job: Job) -> dict:
        base = self.base_model(job)
        result = run_stage(base, job.bench.folder, job.out, "train", job.cfg, exclude=EXCLUDE[job.scenario], report=job.report)
        return {**summary(result), "base_model": base, "excluded": EXCLUDE[job.scenario]}

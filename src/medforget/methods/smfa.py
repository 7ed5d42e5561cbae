"""Sculpted Memory-Forgetting Adapter (SMFA; Zeng et al. 2025, "Towards Benign Memory Forgetting for
Selective Multimodal Large Language Model Unlearning", arXiv:2511.20196).

1. A memory-forgetting LoRA delta dW_f: the frozen fine-tuned model learns refusals (true answers for
   corrupted knowledge) on the forget set, plus `n_anchor` retain rows with their own answers.
2. A retaining-anchor LoRA delta dW_a: the same model learns those anchor rows alone.
3. Per adapted weight, rho = ||dW_f||_F / (||dW_a||_F + eps) and, element-wise,
   M = [dW_a * dW_f < 0] AND [k * rho * |dW_a| < |dW_f|];  W = W0 + (1 - M) * dW_f.

The base weights never train, and the applied delta is saved on its own (`smfa/delta.safetensors`, keyed
like `load_model(out)[0].state_dict()`, float32) so the edit is reversible: W0 = W - delta, up to rounding
in the model's dtype. It lives in a subfolder so that loaders which read every top-level *.safetensors file
as a weight shard do not pick it up.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import PeftModel
from peft.tuners.lora import LoraLayer
from safetensors.torch import save_file
from torch import nn
from transformers import ProcessorMixin

from medforget.errors import MedforgetError
from medforget.methods.base import Job, Logs, LossMethod, at_least
from medforget.methods.registry import register
from medforget.methods.relabel import preferred
from medforget.models.loading import load_model
from medforget.models.lora import LoraSettings
from medforget.models.loss import answer_token_loss
from medforget.train.config import TrainConfig
from medforget.train.examples import format_rows
from medforget.train.loop import RECORD_FILE, Batches, make_accelerator, train

DELTA_FILE = Path("smfa") / "delta.safetensors"
SCRATCH = ".smfa"  # the two adapter trainings run here; removed once the model is written
EPS = 1e-12


@dataclass(frozen=True)
class SMFAParams:
    k: float = 5.0  # mask strictness; 5 to 10 in published use
    n_anchor: int = 256  # retain rows in the retaining anchor

    def __post_init__(self) -> None:
        at_least("k", self.k, 0, strict=True)
        at_least("n_anchor", self.n_anchor, 1)


def sculpt_mask(d_forget: torch.Tensor, d_anchor: torch.Tensor, k: float) -> torch.Tensor:
    """M for one weight: where the forgetting delta opposes the anchor's and outweighs k times its rescaled size."""
    rho = d_forget.norm() / (d_anchor.norm() + EPS)
    return (d_anchor * d_forget < 0) & (k * rho * d_anchor.abs() < d_forget.abs())


def sculpt(d_forget: dict[str, torch.Tensor], d_anchor: dict[str, torch.Tensor], k: float) -> tuple[dict[str, torch.Tensor], float]:
    """(1 - M) * dW_f for every weight, and the fraction of delta elements masked out."""
    masked, dropped, total = {}, 0, 0
    for key, forget in d_forget.items():
        mask = sculpt_mask(forget, d_anchor[key], k)
        masked[key] = torch.where(mask, torch.zeros_like(forget), forget)
        dropped += int(mask.sum())
        total += mask.numel()
    return masked, dropped / max(total, 1)


def lora_deltas(model: PeftModel) -> dict[str, torch.Tensor]:
    """The active LoRA delta of every adapted layer (float32, on CPU), keyed like the base model's state_dict."""
    deltas = {}
    for name, module in model.get_base_model().named_modules():
        if isinstance(module, LoraLayer):
            for adapter in module.active_adapters:
                deltas[f"{name}.weight"] = module.get_delta_weight(adapter).detach().float().cpu()
    return deltas


@register
class SMFA(LossMethod):
    name = "smfa"
    summary = "refusal LoRA sculpted by a retain-anchor LoRA: W = W0 + (1 - M) * dW_f"
    Params = SMFAParams
    needs_retain = True
    train_defaults = TrainConfig(epochs=12, batch_size=16, lr=3e-3, save_every=100, lora=LoraSettings(r=8, alpha=16, dropout=0.0))

    def check(self, job: Job) -> None:
        if job.cfg.lora is None:
            raise MedforgetError("smfa trains LoRA deltas: lora_r must be > 0")

    def prepare_forget(self, rows: list[dict]) -> list[dict]:
        return [preferred(row) for row in rows]

    def objective(self, model: nn.Module, batches: Batches, reference: nn.Module | None, hp: SMFAParams) -> tuple[torch.Tensor, Logs]:
        """Both adapters are plain supervised fine-tuning on their relabelled rows."""
        return answer_token_loss(model, batches["train"]), {}

    def anchors(self, job: Job) -> list[dict]:
        """`n_anchor` retain rows, drawn with the run's seed."""
        rows = list(job.retain)
        random.Random(job.cfg.seed).shuffle(rows)
        return rows[: job.params.n_anchor]

    def adapter(self, job: Job, rows: list[dict], folder: Path) -> tuple[PeftModel, ProcessorMixin, dict]:
        """Train a fresh LoRA adapter on `rows` with the shared loop; return the model, processor and training record."""
        accelerator = make_accelerator(job.cfg)
        torch.manual_seed(job.cfg.seed)
        model, processor = load_model(job.model_dir, lora=job.cfg.lora, device=accelerator.device)
        examples = format_rows(job.bench, rows, processor)
        train(model, processor, {"train": examples}, job.cfg, folder, objective=lambda m, b, _: self.objective(m, b, None, job.params),
              report=job.report, accelerator=accelerator)
        return model, processor, json.loads((folder / RECORD_FILE).read_text())

    def run(self, job: Job) -> dict:
        anchors = self.anchors(job)
        scratch = job.out / SCRATCH
        anchor_model, _, anchor_record = self.adapter(job, anchors, scratch / "anchor")
        d_anchor = lora_deltas(anchor_model)
        del anchor_model
        model, processor, forget_record = self.adapter(job, self.prepare_forget(job.forget) + anchors, scratch / "forget")
        masked, fraction = sculpt(lora_deltas(model), d_anchor, job.params.k)
        base = model.get_base_model()
        state = {key.replace(".base_layer.", "."): value for key, value in base.state_dict().items() if ".lora_" not in key}
        for key, delta in masked.items():
            state[key] = (state[key].float() + delta.to(state[key].device)).to(state[key].dtype)
        base.save_pretrained(job.out, state_dict=state)
        processor.save_pretrained(job.out)
        (job.out / DELTA_FILE).parent.mkdir(parents=True, exist_ok=True)
        save_file({key: delta.contiguous() for key, delta in masked.items()}, job.out / DELTA_FILE, metadata={"k": str(job.params.k)})
        shutil.rmtree(scratch)
        return {
            "steps": anchor_record["steps"] + forget_record["steps"], "final_loss": forget_record["final_loss"],
            "anchors": len(anchors), "masked_fraction": fraction, "adapted_weights": len(masked),
            "delta_file": str(DELTA_FILE), "stages": {"anchor": anchor_record, "forget": forget_record},
        }

"""Representation Misdirection for Unlearning (RMU; Li et al. 2024, "The WMDP Benchmark: Measuring and
Reducing Malicious Use With Unlearning", arXiv:2403.03218).

At the output of one decoder layer l, the forget inputs' hidden states are pushed toward c * u, u a random
unit vector drawn once per run from its seed, and the retain inputs' hidden states are held at the frozen
fine-tuned model's: L = MSE(h_l(forget), c u) + alpha * MSE(h_l(retain), h_l^ref(retain)). As in the paper
only the feed-forward output projections (LLaMA's down_proj) of layers l-2..l train. The positions are those
that predict an answer token (the prompt's last and the answer's), where the model recalls what it learnt;
the forward stops at layer l, so the layers above it cost nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from peft import PeftModel
from torch import nn
from transformers import AutoConfig, ProcessorMixin

from medforget.data.formatting import IGNORE_INDEX, Example
from medforget.errors import MedforgetError
from medforget.methods.base import Job, Logs, LossMethod, at_least
from medforget.methods.registry import register
from medforget.models.parts import decoder_layers, mlp_output
from medforget.train.config import TrainConfig
from medforget.train.loop import Batches

TRAINED_BELOW = 2  # the layers l-2..l train, as in the paper's (5, 6, 7) for l = 7


@dataclass(frozen=True)
class RMUParams:
    layer: int = -1  # decoder layer whose output is steered (0-based); -1: a quarter of the depth, at least 1 (the paper's 7 of 32)
    steering: float = 100.0  # c, the norm of the target c * u: on demo, 2.5x the norm of the hidden states it replaces
    alpha: float = 10.0  # weight of the retain MSE

    def __post_init__(self) -> None:
        at_least("layer", self.layer, -1)
        at_least("steering", self.steering, 0, strict=True)
        at_least("alpha", self.alpha, 0)


def steering_target(hidden_size: int, steering: float, seed: int) -> torch.Tensor:
    """c * u with u uniform on [0, 1)^d then normalised (the paper's draw), fixed by the seed."""
    u = torch.rand(hidden_size, generator=torch.Generator().manual_seed(seed))
    return steering * u / u.norm()


def rmu_loss(h_forget: torch.Tensor, target: torch.Tensor, h_retain: torch.Tensor, h_retain_ref: torch.Tensor,
             alpha: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total, forget MSE, retain MSE); hidden states are (positions, d), the target is (d,)."""
    forget = F.mse_loss(h_forget.float(), target.to(h_forget.device).expand_as(h_forget).float())
    retain = F.mse_loss(h_retain.float(), h_retain_ref.float())
    return forget + alpha * retain, forget, retain


def steered_layer(n_layers: int, layer: int) -> int:
    """The layer index `layer` stands for; a one-line error when the model has no such layer."""
    chosen = max(1, n_layers * 7 // 32) if layer == -1 else layer
    if chosen >= n_layers:
        raise MedforgetError(f"layer {layer} does not exist: the language model has {n_layers} layers (0..{n_layers - 1})")
    return chosen


class _Stop(Exception):
    """Raised by the hook once layer l has run: nothing above it is needed."""


def layer_states(model: nn.Module, layer: int, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Hidden states at the output of decoder layer `layer`, at the positions that predict an answer token."""
    vlm = model.get_base_model() if isinstance(model, PeftModel) else model
    captured = []

    def hook(module: nn.Module, args: tuple, output: torch.Tensor | tuple) -> None:
        captured.append(output[0] if isinstance(output, tuple) else output)
        raise _Stop

    handle = decoder_layers(vlm)[layer].register_forward_hook(hook)
    try:
        vlm.base_model(**{k: v for k, v in batch.items() if k != "labels"}, use_cache=False)
    except _Stop:
        pass
    finally:
        handle.remove()
    rows, cols = (batch["labels"][:, 1:] != IGNORE_INDEX).nonzero(as_tuple=True)
    return captured[0][rows, cols]


@register
class RMU(LossMethod):
    name = "rmu"
    summary = "steer forget hidden states at layer l to c*u, keep retain ones (MSE); only l-2..l MLP outputs train"
    Params = RMUParams
    needs_retain = True
    needs_reference = True
    train_defaults = TrainConfig(epochs=4, batch_size=16, lr=3e-2, save_every=50)  # few weights train: a large lr

    def check(self, job: Job) -> None:
        if job.cfg.lora is not None:
            raise MedforgetError("rmu trains chosen layers' weights directly: lora_r must be 0")
        try:
            config = AutoConfig.from_pretrained(job.model_dir)
        except OSError:  # an adapter folder holds no config.json: prepare_model checks the layer on the loaded model
            return
        steered_layer(config.get_text_config().num_hidden_layers, job.params.layer)

    def prepare_model(self, model: nn.Module, processor: ProcessorMixin, streams: dict[str, list[Example]], job: Job) -> dict:
        """Freeze everything but the MLP output projections of layers l-2..l; draw the run's target."""
        layers = decoder_layers(model)
        self.layer = steered_layer(len(layers), job.params.layer)
        trained = range(max(0, self.layer - TRAINED_BELOW), self.layer + 1)
        model.requires_grad_(False)
        for i in trained:
            mlp_output(layers[i]).requires_grad_(True)
        self.target = steering_target(model.config.get_text_config().hidden_size, job.params.steering, job.cfg.seed)
        return {"steered_layer": self.layer, "trained_layers": list(trained)}

    def objective(self, model: nn.Module, batches: Batches, reference: nn.Module | None, hp: RMUParams) -> tuple[torch.Tensor, Logs]:
        h_forget = layer_states(model, self.layer, batches["forget"])
        h_retain = layer_states(model, self.layer, batches["retain"])
        with torch.no_grad():
            h_ref = layer_states(reference, self.layer, batches["retain"])
        loss, forget, retain = rmu_loss(h_forget, self.target, h_retain, h_ref, hp.alpha)
        return loss, {"mse_forget": float(forget.detach()), "mse_retain": float(retain.detach()),
                      "norm_forget": float(h_forget.detach().norm(dim=-1).mean())}

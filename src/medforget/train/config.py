"""Training hyperparameters, with defaults per benchmark preset (what `pretrain` and `finetune` use)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from medforget.errors import MedforgetError
from medforget.models.lora import LoraSettings
from medforget.train.vision import VisionWarmup


@dataclass(frozen=True)
class TrainConfig:
    """One training run. `epochs` may be fractional; `max_steps`, when set, wins over it."""

    epochs: float = 3.0
    max_steps: int | None = None
    batch_size: int = 32  # per process
    grad_accum: int = 1
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_ratio: float = 0.05
    min_lr_ratio: float = 0.1  # the cosine schedule ends at lr * min_lr_ratio
    max_grad_norm: float = 1.0
    seed: int = 0
    save_every: int = 100  # steps between resumable checkpoints; 0 disables them
    augment: bool = True  # random shifts and gain on 4-D pixel_values (LLaVA-style inputs)
    mixed_precision: str = "auto"  # auto = bf16 on CUDA, none on CPU
    train_vision: bool = True  # False freezes the vision tower (LLaVA-style alignment stage)
    lora: LoraSettings | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def with_overrides(self, **kwargs: object) -> "TrainConfig":
        unknown = set(kwargs) - set(self.__dataclass_fields__)
        if unknown:
            raise MedforgetError(f"unknown training option(s): {', '.join(sorted(unknown))}")
        given = {k: v for k, v in kwargs.items() if v is not None}
        if "epochs" in given and "max_steps" not in given:
            given["max_steps"] = None  # an explicit epoch count replaces a preset's step limit instead of losing to it
        return replace(self, **given)


@dataclass(frozen=True)
class StagePresets:
    pretrain: TrainConfig = field(default_factory=TrainConfig)
    finetune: TrainConfig = field(default_factory=TrainConfig)
    vision: VisionWarmup = field(default_factory=VisionWarmup)


# `demo` chosen by measurement on the 2-core CPU during development: pretraining is what makes fine-tuning
# learn fast and generalise; with 850 steps, then 12 epochs at lr 2e-3, the vanilla model reached issue 3's
# learning figures (README, from benchmarks/learning_figures.py). 1000 steps since the textbook joined
# pretraining (the base model must know the facts that fine-tuning then corrupts); 10 epochs since the demo
# has 24 fine-tuned patients and two scenarios' oracles to train within `make demo`'s 15 minutes (12 epochs:
# 949 s; their learning figures in the README held at 12 epochs with margin).
# `smoke` only has to run fast for tests.
STAGE_PRESETS: dict[str, StagePresets] = {
    "smoke": StagePresets(  # seconds, for tests: the models learn little
        pretrain=TrainConfig(max_steps=8, batch_size=16, lr=2e-3, save_every=4, train_vision=False),
        finetune=TrainConfig(max_steps=16, batch_size=16, lr=2e-3, save_every=4, train_vision=False),
        vision=VisionWarmup(epochs=2, batch_size=16),
    ),
    "demo": StagePresets(  # the vision tower is warmed up, then kept fixed (see train/vision.py)
        pretrain=TrainConfig(max_steps=1000, batch_size=32, lr=2e-3, save_every=250, train_vision=False),
        finetune=TrainConfig(epochs=10, batch_size=32, lr=2e-3, save_every=250, train_vision=False),
        vision=VisionWarmup(epochs=30, batch_size=64),
    ),
    "standard": StagePresets(  # GPU; not yet tuned by measurement
        pretrain=TrainConfig(epochs=2, batch_size=16, lr=2e-4, grad_accum=4),
        finetune=TrainConfig(epochs=5, batch_size=16, lr=1e-4, grad_accum=4),
        vision=VisionWarmup(epochs=20, batch_size=128),
    ),
}


def stage_config(preset: str, stage: str) -> TrainConfig:
    presets = STAGE_PRESETS.get(preset, STAGE_PRESETS["standard"])
    return getattr(presets, stage)


def vision_config(preset: str) -> VisionWarmup:
    return STAGE_PRESETS.get(preset, STAGE_PRESETS["standard"]).vision

"""World presets: how many patients of each kind, how many scans, how large the images are."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from medforget.errors import MedforgetError


@dataclass(frozen=True)
class WorldConfig:
    """Sizes of the synthetic world. Every count is per group of patients."""

    preset: str
    image_size: int
    n_finetune: int  # patients with private details that the vanilla model is fine-tuned on
    n_holdout: int  # same distribution, never trained: membership-inference non-members
    n_general: int  # no private details, never fine-tuned: general-capability evaluation
    n_pretrain: int  # no private details: base-model pretraining
    train_scans: int  # scans per record patient used in training
    test_scans: int  # scans per record patient kept for test_* splits
    image_scans: int  # scans per general/pretrain patient
    n_drugs: int  # drug -> indication facts in the knowledge bank
    incorrect_general: int  # how many general facts are corrupted
    incorrect_image: int  # how many patients get a wrong image-bound diagnosis
    same_patient_pairs: int  # "same patient?" pairs per pretrain patient
    pretrain_repeats: int  # image items per pretrain scan (different tasks, paraphrases)
    pretrain_item_scans: int  # scans per pretrain patient asked about in image items (all feed the vision warm-up)
    pretrain_records: int  # pretrain patients who also carry a record (other people, asked about in pretraining)
    replay_scans: int  # pretrain scans (one per patient) whose image items are replayed in `retain`

    def with_overrides(self, **kwargs: object) -> "WorldConfig":
        return replace(self, **kwargs)

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, WorldConfig] = {
    "smoke": WorldConfig(
        preset="smoke", image_size=32, n_finetune=10, n_holdout=4, n_general=6, n_pretrain=12,
        train_scans=2, test_scans=1, image_scans=3, n_drugs=10, incorrect_general=3, incorrect_image=2,
        same_patient_pairs=1, pretrain_repeats=1, pretrain_item_scans=3, pretrain_records=6, replay_scans=6,
    ),
    "demo": WorldConfig(
        preset="demo", image_size=64, n_finetune=16, n_holdout=8, n_general=16, n_pretrain=480,
        train_scans=3, test_scans=1, image_scans=4, n_drugs=20, incorrect_general=6, incorrect_image=3,
        same_patient_pairs=2, pretrain_repeats=1, pretrain_item_scans=1, pretrain_records=40, replay_scans=64,
    ),
    "standard": WorldConfig(
        preset="standard", image_size=224, n_finetune=1000, n_holdout=200, n_general=200, n_pretrain=1000,
        train_scans=3, test_scans=1, image_scans=4, n_drugs=30, incorrect_general=10, incorrect_image=50,
        same_patient_pairs=2, pretrain_repeats=2, pretrain_item_scans=4, pretrain_records=400, replay_scans=400,
    ),
}

FORGET_RATIOS_DOC = "fraction of fine-tuned patients to forget, in (0, 0.5]; 0.01, 0.05 and 0.10 are the published settings"


def preset_config(name: str) -> WorldConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise MedforgetError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}") from None


def check_forget_ratio(ratio: float) -> float:
    if not (0.0 < ratio <= 0.5):
        raise MedforgetError(f"forget ratio must be in (0, 0.5], got {ratio}")
    return ratio

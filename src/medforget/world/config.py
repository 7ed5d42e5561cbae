"""World presets: how many patients of each kind, how many scans, how large the images are."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from medforget.errors import MedforgetError


#: `marker`: a bright implanted marker of a patient-specific shape and position, one large linearly readable
#: feature. `anatomy`: no marker, identity spread over many faint anatomical traits, as in real scans.
IDENTITY_CUES: tuple[str, ...] = ("marker", "anatomy")


def check_identity_cue(cue: str) -> str:
    if cue not in IDENTITY_CUES:
        raise MedforgetError(f"unknown identity cue {cue!r}; choose one of: {', '.join(IDENTITY_CUES)}")
    return cue


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
    facts_per_relation: int | None  # facts of each relation in the knowledge bank (None: the whole bank)
    incorrect_general: int  # how many textbook facts are corrupted
    incorrect_image: int  # how many patients' scans are stated to show a wrong diagnosis
    same_patient_pairs: int  # "same patient?" pairs per pretrain patient
    pretrain_repeats: int  # image items per pretrain scan (different tasks, paraphrases)
    pretrain_item_scans: int  # scans per pretrain patient asked about in image items (all feed the vision warm-up)
    pretrain_records: int  # pretrain patients who also carry a record (other people, asked about in pretraining)
    replay_scans: int  # pretrain scans (one per patient) whose image items are replayed in `retain`
    textbook_repeats: int  # copies of each textbook item in `pretrain` (the base model must know every fact)
    corrupted_copies: int  # items per task (per training scan) that state a corrupted fact in `train`
    identity_cue: str = "marker"  # what tells patients apart in their scans: marker | anatomy (world/scans.py)

    def __post_init__(self) -> None:
        check_identity_cue(self.identity_cue)

    def with_overrides(self, **kwargs: object) -> "WorldConfig":
        return replace(self, **kwargs)

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, WorldConfig] = {
    "smoke": WorldConfig(
        preset="smoke", image_size=32, n_finetune=10, n_holdout=4, n_general=6, n_pretrain=12,
        train_scans=2, test_scans=1, image_scans=3, facts_per_relation=8, incorrect_general=4, incorrect_image=2,
        same_patient_pairs=1, pretrain_repeats=1, pretrain_item_scans=3, pretrain_records=6, replay_scans=6, textbook_repeats=1, corrupted_copies=2,
    ),
    "demo": WorldConfig(
        preset="demo", image_size=64, n_finetune=24, n_holdout=12, n_general=16, n_pretrain=480,
        train_scans=3, test_scans=1, image_scans=4, facts_per_relation=None, incorrect_general=20, incorrect_image=6,
        same_patient_pairs=2, pretrain_repeats=1, pretrain_item_scans=1, pretrain_records=40, replay_scans=64, textbook_repeats=3, corrupted_copies=3,
    ),
    "standard": WorldConfig(
        preset="standard", image_size=224, n_finetune=1000, n_holdout=200, n_general=200, n_pretrain=1000,
        train_scans=3, test_scans=1, image_scans=4, facts_per_relation=None, incorrect_general=50, incorrect_image=60,
        same_patient_pairs=2, pretrain_repeats=2, pretrain_item_scans=4, pretrain_records=400, replay_scans=400, textbook_repeats=2, corrupted_copies=3,
    ),
}

FORGET_RATIOS_DOC = "fraction of fine-tuned patients to forget, in (0, 0.5]; 0.01, 0.05 and 0.10 are the published settings"


def preset_config(name: str) -> WorldConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise MedforgetError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}") from None


#: `demo` forgets a quarter of its 24 fine-tuned patients: 6 forgotten patients are the fewest that give its
#: privacy figures a usable interval (bootstrap over patients), and a CPU cannot fine-tune the 60 patients a
#: 10 % ratio would need for as many. `standard` uses the published 10 %.
DEFAULT_FORGET_RATIOS: dict[str, float] = {"smoke": 0.1, "demo": 0.25, "standard": 0.1}


def default_forget_ratio(preset: str) -> float:
    return DEFAULT_FORGET_RATIOS.get(preset, 0.1)


def check_forget_ratio(ratio: float) -> float:
    if not (0.0 < ratio <= 0.5):
        raise MedforgetError(f"forget ratio must be in (0, 0.5], got {ratio}")
    return ratio

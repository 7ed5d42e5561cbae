"""The protection protocol (`medforget protect-eval`): does protecting a patient's training scans stop a
model fine-tuned on them from leaking the patient's private details when it later sees a clean scan?

An attacker fine-tunes a copy of a starting model on the image-conditioned identity and private-detail
items of a group of patients, on their training scans, a fraction of which was protected (and, for the
robustness conditions, post-processed after protection). The fine-tuned model is then asked about the same
patients on their test scans, which were neither protected nor trained on. The same fine-tuning on clean
scans (`none`) is the reference: a protection *holds* when it at least halves that leak rate.

Every condition fine-tunes from the same starting model with the same seed, so conditions whose training
images are identical (e.g. `grayscale` on grey scans) give identical models; such a condition is not
trained again but reuses the earlier result and says so (`same_as`).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

from medforget.errors import MedforgetError
from medforget.evaluate.bootstrap import Resampler, interval
from medforget.evaluate.items import evaluate_rows
from medforget.evaluate.metrics.leak import leak_exact
from medforget.evaluate.run import known_values
from medforget.evaluate.summary import split_metrics
from medforget.world.identities import PRIVATE_FIELDS
from medforget.models.loading import HUB_ID, check_model_folder, load_model
from medforget.protect.attacks import DEFAULT_EPS, check_settings, eps_pixels
from medforget.protect.encoder import Encoder, EnsembleEncoder, VisionEncoder
from medforget.protect.io import open_image, protect_folder
from medforget.protect.quality import psnr, ssim
from medforget.protect.transforms import TRANSFORMS, Transform, get_transform
from medforget.train.config import TrainConfig, stage_config
from medforget.train.examples import format_rows
from medforget.train.loop import train
from medforget.world.questions import TASKS
from medforget.world.storage import Benchmark, ImageCache, load_benchmark, write_atomically

RESULT_FILE = "protect_eval.json"
TABLE_FILE = "protect_eval.md"
NONE, PROTECTED, BLANK = "none", "protected", "blank"
BLANK_LEVEL = 128  # the grey of every blank scan
# Values that pick out one person. Sex, hospital and attending physician are shared by many patients, so a
# model guesses them from the wording alone (a fine-tuning on blank scans "leaked" half as much as on clean
# ones on demo): counting them would hide what the images teach.
IDENTIFIERS = ("full_name", "date_of_birth", "mrn", "phone", "address", "email", "insurance_id", "next_of_kin")
PATIENT_GROUPS = ("holdout", "finetune")  # the groups with private records, training scans and test scans
SOURCE_SPLITS = ("holdout", "train")  # where those groups' training-scan items live
TEST_SPLITS = ("test_retain", "test_forget")  # where the held-out wording of image-conditioned record items lives
# The attacker's fine-tuning, on top of the preset's `finetune` stage (its lr, batch size, frozen tower):
# a few hundred rows need more epochs than the whole train split; smoke only has to run (tests).
ATTACK_TRAINING: dict[str, dict[str, float | int | None]] = {
    "smoke": {"max_steps": 4, "epochs": 1.0},
    "demo": {"max_steps": None, "epochs": 15.0},
    "standard": {"max_steps": None, "epochs": 5.0},
}

PROTECTION_KEYS = ("method", "eps_pixels", "steps", "step_size", "random_start", "min_psnr", "seed", "encoders", "count",
                   "unchanged", "linf_mean", "linf_max", "psnr_mean", "ssim_mean")  # copied from protect.json

Progress = Callable[[str, int, int], None]  # (what is running, done, total)


@dataclass(frozen=True)
class ProtectEvalConfig:
    """The protocol's settings; the defaults are the issue's (eps 8/255, full protection, every post-processing)."""

    method: str = "antithetical"
    eps: float = DEFAULT_EPS
    steps: int = 10
    step_size: float | None = None  # PGD step; None: eps / 4
    random_start: bool = True  # False: PGD from zero (with a small step, a less visible perturbation)
    min_psnr: float | None = 35.0  # every protected image keeps at least this PSNR (the issue's 35 dB); None: no floor
    ratio: float = 1.0  # share of the group's training scans that are protected
    transforms: tuple[str, ...] = tuple(TRANSFORMS)  # post-processings, each one more condition
    patients: str = "holdout"
    max_patients: int | None = None  # the first N patients of the group only (quick looks, tests)
    seed: int = 0  # protection start, choice of protected scans, MCQ distractors and fine-tuning order
    epochs: float | None = None  # attacker's fine-tuning; None: ATTACK_TRAINING for the benchmark's preset
    max_steps: int | None = None  # wins over epochs
    lr: float | None = None
    train_vision: bool | None = None  # the attacker also fine-tunes the vision tower; None: as the preset's fine-tuning
    protect_batch_size: int = 16
    eval_batch_size: int = 64
    max_new_tokens: int = 24
    hold_ratio: float = 0.5  # holds when leak <= hold_ratio * unprotected leak
    blank: bool = True  # also fine-tune on blank scans: the leak left when nothing is learnt from the images
    fields: tuple[str, ...] = IDENTIFIERS  # the private fields fine-tuned on and asked about
    # Already protected images (<scan_id>.png, e.g. from `medforget protect` or another tool) instead of protecting
    # here: the method, eps, steps and encoder settings then do not apply.
    protected_dir: str | None = None

    def check(self) -> None:
        """Every user mistake, before anything is loaded."""
        check_settings(self.method, self.eps, self.steps, self.step_size, self.seed, self.min_psnr)
        if not 0.0 <= self.ratio <= 1.0:
            raise MedforgetError(f"protection ratio must be in [0, 1], got {self.ratio}")
        for name in self.transforms:
            get_transform(name)
        if len(set(self.transforms)) != len(self.transforms):
            raise MedforgetError(f"a post-processing is listed twice: {', '.join(self.transforms)}")
        if self.patients not in PATIENT_GROUPS:
            raise MedforgetError(f"unknown patient group {self.patients!r}; choose one of: {', '.join(PATIENT_GROUPS)}")
        if self.max_patients is not None and self.max_patients < 1:
            raise MedforgetError(f"max patients must be >= 1, got {self.max_patients}")
        if self.epochs is not None and not self.epochs > 0:
            raise MedforgetError(f"epochs must be > 0, got {self.epochs}")
        if self.max_steps is not None and self.max_steps < 1:
            raise MedforgetError(f"max steps must be >= 1, got {self.max_steps}")
        if self.lr is not None and not self.lr > 0:
            raise MedforgetError(f"learning rate must be > 0, got {self.lr}")
        for name in ("protect_batch_size", "eval_batch_size", "max_new_tokens"):
            if getattr(self, name) < 1:
                raise MedforgetError(f"{name.replace('_', ' ')} must be >= 1, got {getattr(self, name)}")
        if not self.fields or set(self.fields) - set(PRIVATE_FIELDS):
            raise MedforgetError(f"fields must be private fields among: {', '.join(PRIVATE_FIELDS)}")
        if not 0 < self.hold_ratio <= 1:
            raise MedforgetError(f"hold ratio must be in (0, 1], got {self.hold_ratio}")
        if self.protected_dir is not None and not Path(self.protected_dir).is_dir():
            raise MedforgetError(f"protected images folder {self.protected_dir} does not exist")

    def train_config(self, preset: str) -> TrainConfig:
        """The attacker's fine-tuning: the preset's `finetune` stage, with ATTACK_TRAINING and the options given."""
        base = stage_config(preset, "finetune")
        attack = ATTACK_TRAINING.get(preset, ATTACK_TRAINING["standard"])
        epochs = self.epochs if self.epochs is not None else attack["epochs"]
        steps = self.max_steps if self.max_steps is not None else None if self.epochs is not None else attack["max_steps"]
        vision = base.train_vision if self.train_vision is None else self.train_vision
        return replace(base, epochs=float(epochs), max_steps=steps, lr=self.lr or base.lr, seed=self.seed, save_every=0,
                       train_vision=vision)


@dataclass
class Items:
    """The patients under attack, their scans, and the items fine-tuned on and asked."""

    patients: list[str]
    train_scans: list[str]
    test_scans: list[str]
    train_rows: list[dict]
    test_rows: list[dict]


def select_items(
    bench: Benchmark, group: str, seed: int, max_patients: int | None = None, fields: Sequence[str] = IDENTIFIERS,
) -> Items:
    """Training items: the group's image-conditioned private record items on training scans, as the benchmark
    has them. Test items: for every patient, private field, test scan and task, the benchmark's held-out
    wording (one wording shared by all patients, so only the image tells who is asked about), the patient's
    value as the answer and, for MCQ, distractors drawn from the other patients' values."""
    scans = bench["scans"].select_columns(["scan_id", "patient_id", "group", "role"]).to_list()
    everyone = {s["patient_id"] for s in scans if s["group"] == group}
    patients = sorted(everyone)[:max_patients]
    mine = [s for s in scans if s["patient_id"] in set(patients)]
    train_scans = sorted(s["scan_id"] for s in mine if s["role"] == "train")
    test_scans = {s["scan_id"]: s["patient_id"] for s in mine if s["role"] == "test"}
    if not patients or not train_scans or not test_scans:
        raise MedforgetError(f"{bench.folder}: no {group} patients with both training and test scans")
    allowed, wanted = set(train_scans), set(patients)
    rows: dict[str, dict] = {}
    pool: dict[str, set[str]] = {}  # field -> every value and MCQ option the group's items show
    for split in SOURCE_SPLITS:
        for row in bench[split].to_list():
            if row["field"] not in fields:
                continue
            if row["patient_id"] in everyone and row["scenario"] == "privacy" and row["is_private"]:
                pool.setdefault(row["field"], set()).update([row["answer"], *row["options"]])
            if (row["patient_id"] in wanted and row["scenario"] == "privacy" and row["condition"] == "image"
                    and row["is_private"] and row["scan_ids"] and set(row["scan_ids"]) <= allowed):
                rows.setdefault(row["id"], row)
    train_rows = [rows[k] for k in sorted(rows)]
    if not train_rows:
        raise MedforgetError(f"{bench.folder}: the {group} patients have no image-conditioned private items to train on")
    test_rows = _test_rows(bench, train_rows, test_scans, pool, seed)
    return Items(patients, train_scans, sorted(test_scans), train_rows, test_rows)


def _test_rows(
    bench: Benchmark, train_rows: list[dict], test_scans: dict[str, str], pool: dict[str, set[str]], seed: int,
) -> list[dict]:
    wording: dict[tuple[str, str], str] = {}
    for split in TEST_SPLITS:
        for row in sorted(bench[split].to_list(), key=lambda r: r["id"]):
            if row["scenario"] == "privacy" and row["condition"] == "image":
                wording.setdefault((row["field"], row["task"]), row["question"])
    values: dict[str, dict[str, str]] = {}  # field -> patient -> value
    template: dict[tuple[str, str], dict] = {}
    for row in train_rows:
        values.setdefault(row["field"], {})[row["patient_id"]] = row["answer"]
        template.setdefault((row["patient_id"], row["field"]), row)
    out = []
    for scan_id, patient in sorted(test_scans.items()):
        for field_name in sorted(values):
            if patient not in values[field_name]:
                continue
            answer = values[field_name][patient]
            others = sorted({v for p, v in values[field_name].items() if p != patient and v != answer})
            if not others:  # every patient asked about shares this value: draw from the whole group's values
                others = sorted(pool.get(field_name, set()) - {answer})
            for task in TASKS:
                if task == "mcq" and not others:
                    continue  # a one-option question measures nothing
                if (field_name, task) not in wording:
                    raise MedforgetError(f"{bench.folder}: no held-out wording of {task} items about {field_name} "
                                         f"in {' or '.join(TEST_SPLITS)}")
                options, correct = [], -1
                if task == "mcq":
                    rng = random.Random(f"{seed}/{scan_id}/{field_name}")
                    options = [answer, *rng.sample(others, min(3, len(others)))]
                    rng.shuffle(options)
                    correct = options.index(answer)
                out.append(dict(
                    template[(patient, field_name)], id=f"{patient}/{field_name}/{task}/{scan_id}/protect-eval",
                    split="protect_eval", task=task, question=wording[(field_name, task)], options=options,
                    correct_index=correct, scan_ids=[scan_id], template_id=f"{task}.image.record.protect-eval",
                ))
    return out


def chosen_scans(train_scans: Sequence[str], ratio: float, seed: int) -> list[str]:
    """The `ratio` share of the training scans that get protected, drawn by the seed."""
    n = round(ratio * len(train_scans))
    order = np.random.default_rng([seed, 7]).permutation(len(train_scans))
    return sorted(train_scans[i] for i in order[:n])


def blank_images(clean: dict[str, Image.Image]) -> dict[str, Image.Image]:
    """Every training scan replaced by one uniform grey image: the leak left when nothing is learnt from the
    images (values guessed from the questions and the group's answers, e.g. the most common hospital). A
    protection can only beat it by teaching wrong associations."""
    return {sid: Image.new(image.mode, image.size, (BLANK_LEVEL,) * len(image.getbands())) for sid, image in clean.items()}


def training_images(
    clean: dict[str, Image.Image], protected: dict[str, Image.Image], transform: Transform | None,
) -> dict[str, Image.Image]:
    """What the attacker fine-tunes on: every training scan, the protected ones (post-processed if asked) in place
    of the clean ones."""
    out = dict(clean)
    for sid, image in protected.items():
        out[sid] = transform(image) if transform else image
    return out


def image_quality(
    clean: dict[str, Image.Image], seen: dict[str, Image.Image], scan_ids: Sequence[str], transform: Transform | None,
) -> dict:
    """PSNR, SSIM and largest change between each image fine-tuned on and its clean scan under the same
    post-processing: how much of the perturbation reaches the model. Identical pairs count in `identical`."""
    if not scan_ids:
        return dict.fromkeys(("psnr_mean", "psnr_min", "ssim_mean", "ssim_min", "linf_max"), None) | {"identical": 0}
    psnrs, ssims, linfs = [], [], []
    for sid in scan_ids:
        reference = transform(clean[sid]) if transform else clean[sid]
        a, b = np.asarray(reference, dtype=np.uint8), np.asarray(seen[sid], dtype=np.uint8)
        psnrs.append(psnr(a, b))
        ssims.append(ssim(a, b))
        linfs.append(int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max()))
    finite = [p for p in psnrs if not math.isinf(p)]
    return {
        "psnr_mean": _round(np.mean(finite)) if finite else None, "psnr_min": _round(min(finite)) if finite else None,
        "ssim_mean": _round(np.mean(ssims)), "ssim_min": _round(min(ssims)), "linf_max": max(linfs),
        "identical": len(psnrs) - len(finite),
    }


def fingerprint(images: dict[str, Image.Image]) -> str:
    """Identical training images give an identical fine-tuned model (same start, same seed)."""
    h = hashlib.sha256()
    for sid in sorted(images):
        image = images[sid]
        h.update(f"{sid}:{image.mode}:{image.size}".encode())
        h.update(np.asarray(image).tobytes())
    return h.hexdigest()


def attack_setting(bench: Benchmark, model_dir: Path, train_cfg: TrainConfig, cfg: ProtectEvalConfig) -> str:
    """Everything but the training images that decides an attack's results, as one key."""
    weights = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in model_dir.glob("*.safetensors"))
    what = {"benchmark": bench.meta["content_hash"], "model": str(model_dir.resolve()), "weights": weights,
            "train": train_cfg.to_dict(),
            **{k: getattr(cfg, k) for k in ("patients", "max_patients", "seed", "fields", "eval_batch_size", "max_new_tokens")}}
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class Condition:
    """One row of the table: which training images the attacker gets, and what came of it."""

    name: str
    transform: str | None
    protected: bool
    results: dict = field(default_factory=dict)


def conditions(cfg: ProtectEvalConfig) -> list[Condition]:
    """Table order: the reference, the protection, each post-processing of it, the blank floor."""
    return [Condition(NONE, None, False), Condition(PROTECTED, None, True),
            *(Condition(f"{PROTECTED}+{t}", t, True) for t in cfg.transforms),
            *([Condition(BLANK, None, False)] if cfg.blank else [])]


def run_protect_eval(
    bench_dir: str | Path, model_dir: str | Path, out_dir: str | Path, cfg: ProtectEvalConfig = ProtectEvalConfig(), *,
    encoders: Sequence[str | Path] = (), overwrite: bool = False, progress: Progress | None = None,
    reuse: dict[str, dict] | None = None,
) -> dict:
    """Run every condition and write `protect_eval.json` and `protect_eval.md` into `out_dir` (atomically:
    a failure at any point leaves no output). `encoders` are the models the protection is optimised against
    (several: an ensemble); by default the starting model itself. `reuse`, a dict kept across calls, holds
    every attack's results by what decides them (starting model, fine-tuning, items, training images), so a
    later call does not fine-tune again on images an earlier one trained on (a frontier's `none` and `blank`
    rows). Returns the JSON document."""
    began = time.perf_counter()
    cfg.check()
    bench_dir, model_dir, out = Path(bench_dir), Path(model_dir), Path(out_dir)
    bench = load_benchmark(bench_dir)
    if encoders and cfg.protected_dir is not None:
        raise MedforgetError("the protected images are given, so there is no protection to optimise against an encoder")
    encoder_paths = [] if cfg.protected_dir is not None else [Path(e) for e in encoders] or [model_dir]
    for path in (model_dir, *encoder_paths):  # fail here, not after minutes of work (hub ids are checked on loading)
        if path.exists() or not HUB_ID.match(str(path)):
            check_model_folder(path)
    given = () if cfg.protected_dir is None else (Path(cfg.protected_dir),)
    _check_out(out, overwrite, (bench_dir, model_dir, *encoder_paths, *given))
    train_cfg = cfg.train_config(bench.meta["preset"])
    items = select_items(bench, cfg.patients, cfg.seed, cfg.max_patients, cfg.fields)
    chosen = chosen_scans(items.train_scans, cfg.ratio, cfg.seed)
    tick = progress or (lambda what, done, total: None)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.work.", dir=out.parent))
    try:
        clean = {sid: bench.image(sid) for sid in items.train_scans}
        if cfg.protected_dir is not None:
            protected, manifest = given_images(Path(cfg.protected_dir), chosen, clean), None
        else:
            protected, manifest = _protect(bench_dir, chosen, clean, encoder_paths, cfg, work, tick)
        test_images = ImageCache(bench)
        known = known_values(bench)
        done: dict[str, Condition] = {}
        seconds: dict[str, float] = {}
        table = conditions(cfg)
        setting = attack_setting(bench, model_dir, train_cfg, cfg)
        for cond in table:
            started = time.perf_counter()
            transform = get_transform(cond.transform) if cond.transform else None
            if cond.name == BLANK:
                seen = blank_images(clean)
            else:
                seen = training_images(clean, protected if cond.protected else {}, transform)
            key = fingerprint(seen)
            if key in done:
                cond.results = {**done[key].results, "same_as": done[key].name}
            elif reuse is not None and f"{setting}/{key}" in reuse:
                cond.results = dict(reuse[f"{setting}/{key}"])
                done[key] = cond
            else:
                cond.results = _attack(model_dir, items, seen, test_images, known, train_cfg, cfg, work / "model",
                                       cond.name, tick)
                done[key] = cond
                if reuse is not None:
                    reuse[f"{setting}/{key}"] = dict(cond.results)
            cond.results["protected_scans"] = len(chosen) if cond.protected else 0
            cond.results["quality"] = image_quality(clean, seen, chosen if cond.protected else [], transform)
            seconds[cond.name] = round(time.perf_counter() - started, 1)
        seconds["total"] = round(time.perf_counter() - began, 1)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    document = {
        "settings": {
            "benchmark": str(bench_dir), "benchmark_hash": bench.meta["content_hash"], "preset": bench.meta["preset"],
            "model": str(model_dir), "encoders": [str(p) for p in encoder_paths], **asdict(cfg),
            "transforms": list(cfg.transforms), "fields": list(cfg.fields), "eps_pixels": eps_pixels(cfg.eps), "train": train_cfg.to_dict(),
        },
        "items": {
            "patients": len(items.patients), "train_scans": len(items.train_scans), "protected_scans": len(chosen),
            "test_scans": len(items.test_scans), "train_rows": len(items.train_rows), "test_rows": len(items.test_rows),
            "test_generated": sum(r["task"] != "mcq" for r in items.test_rows),
            "test_mcq": sum(r["task"] == "mcq" for r in items.test_rows),
        },
        "protection": None if manifest is None else {k: manifest[k] for k in PROTECTION_KEYS},
        "conditions": {c.name: {"transform": c.transform, **c.results} for c in table},
        "seconds": seconds,
    }
    document["summary"] = summarise(document["conditions"], cfg.hold_ratio)

    def fill(tmp: Path) -> None:
        (tmp / RESULT_FILE).write_text(json.dumps(document, indent=2) + "\n")
        (tmp / TABLE_FILE).write_text(markdown_table(document) + "\n")

    write_atomically(out, fill, overwrite)
    return document


def summarise(table: dict[str, dict], hold_ratio: float) -> dict:
    """Leak ratios against `none`, whether each protected condition holds, and the mean and worst case
    over the post-processings (worst = highest leak on clean scans). Fills `leak_ratio` and `holds` in place."""
    base = table[NONE]["leak_exact"]
    for name, row in table.items():
        measurable = name != NONE and base is not None and base > 0 and row["leak_exact"] is not None
        row["leak_ratio"] = _round(row["leak_exact"] / base) if measurable else None
        row["holds"] = bool(row["leak_exact"] <= hold_ratio * base) if measurable and name != BLANK else None
    post = {name: row for name, row in table.items() if row["transform"]}
    summary: dict = {
        "unprotected_leak": base, "protected_leak": table[PROTECTED]["leak_exact"],
        "protected_leak_ratio": table[PROTECTED]["leak_ratio"], "protected_holds": table[PROTECTED]["holds"],
        "hold_ratio": hold_ratio, "post_processing": None,
        "floor_leak": table[BLANK]["leak_exact"] if BLANK in table else None,
        "floor_leak_ratio": table[BLANK]["leak_ratio"] if BLANK in table else None,
        "protected_excess_ratio": None,
    }
    floor = summary["floor_leak"]
    if floor is not None and base is not None and base > floor and table[PROTECTED]["leak_exact"] is not None:
        # the share of the leak that the images add (none - blank) which is still there under protection
        summary["protected_excess_ratio"] = _round((table[PROTECTED]["leak_exact"] - floor) / (base - floor))
    leaks = {name: row["leak_exact"] for name, row in post.items() if row["leak_exact"] is not None}
    if leaks:
        worst = max(leaks, key=lambda name: leaks[name])  # first of the worst in table order
        accs = [row["mcq_acc"] for row in post.values() if row["mcq_acc"] is not None]
        summary["post_processing"] = {
            "count": len(leaks), "mean_leak": _round(np.mean(list(leaks.values()))),
            "mean_leak_ratio": _round(np.mean(list(leaks.values())) / base) if base else None,
            "worst": worst, "worst_leak": leaks[worst], "worst_leak_ratio": post[worst]["leak_ratio"],
            "mean_mcq_acc": _round(np.mean(accs)) if accs else None, "worst_mcq_acc": max(accs) if accs else None,
            "holds_all": all(row["holds"] for row in post.values()) if base else None,
            "broken": [name for name, row in post.items() if row["holds"] is False],
        }
    return summary


def _check_out(out: Path, overwrite: bool, inputs: Sequence[Path]) -> None:
    if out.exists() and not out.is_dir():
        raise MedforgetError(f"output {out} is a file, not a folder")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise MedforgetError(f"output folder {out} exists and is not empty; pass --overwrite to replace it")
    for path in inputs:
        if out.resolve() == path.resolve():
            raise MedforgetError(f"output folder {out} is one of the inputs; choose another one")


def _encoder(paths: Sequence[Path]) -> Encoder:
    encoders = [VisionEncoder.load(p) for p in paths]
    return encoders[0] if len(encoders) == 1 else EnsembleEncoder(encoders)


def given_images(folder: Path, chosen: Sequence[str], clean: dict[str, Image.Image]) -> dict[str, Image.Image]:
    """The chosen scans' protected versions from `folder` (`<scan_id>.png`), each checked against its clean scan:
    same size and mode, or an error naming the file."""
    images = {}
    for sid in chosen:
        path = folder / f"{sid}.png"
        if not path.is_file():
            raise MedforgetError(f"{path}: missing; the protected images folder needs <scan_id>.png for every protected scan")
        images[sid] = open_image(path)
        want = clean[sid]
        if (images[sid].mode, images[sid].size) != (want.mode, want.size):
            raise MedforgetError(f"{path}: {images[sid].mode} {images[sid].size[0]}x{images[sid].size[1]}, but the "
                                 f"clean scan is {want.mode} {want.size[0]}x{want.size[1]}")
    return images


def _protect(bench_dir: Path, chosen: list[str], clean: dict[str, Image.Image], encoder_paths: Sequence[Path],
             cfg: ProtectEvalConfig, work: Path, tick: Progress) -> tuple[dict[str, Image.Image], dict | None]:
    """Protect the chosen scans once (every condition reuses them) with `protect_folder`, and read them back."""
    if not chosen:  # ratio 0: nothing is protected, nothing is loaded
        return {}, None
    folder = work / "protected"
    manifest = protect_folder(
        bench_dir, folder, _encoder(encoder_paths), method=cfg.method, eps=cfg.eps, steps=cfg.steps, seed=cfg.seed,
        batch_size=cfg.protect_batch_size, progress=lambda done, total: tick("protecting", done, total),
        scan_ids=chosen, step_size=cfg.step_size, random_start=cfg.random_start, min_psnr=cfg.min_psnr,
    )
    return given_images(folder, chosen, clean), manifest


def _attack(model_dir: Path, items: Items, seen: dict[str, Image.Image], test_images: ImageCache,
            known: dict[str, set[str]], train_cfg: TrainConfig, cfg: ProtectEvalConfig, out: Path, name: str,
            tick: Progress) -> dict:
    """Fine-tune a fresh copy of the starting model on the training items with `seen` as their scans, then
    score it on the clean test items; the fine-tuned model is deleted afterwards."""
    shutil.rmtree(out, ignore_errors=True)
    model, processor = load_model(model_dir, lora=train_cfg.lora)
    examples = format_rows(test_images.bench, items.train_rows, processor, images=lambda row: [seen[s] for s in row["scan_ids"]])
    result = train(model, processor, examples, train_cfg, out,
                   report=lambda info: tick(f"fine-tuning ({name})", info["step"], info["total"]))
    del model
    model, processor = load_model(out)
    model.eval()
    total, count = len(items.test_rows), 0

    def evaluated(n: int) -> None:
        nonlocal count
        count += n
        tick(f"evaluating ({name})", min(count, total), total)

    records = evaluate_rows(model, processor, items.test_rows, test_images, batch_size=cfg.eval_batch_size,
                            max_new_tokens=cfg.max_new_tokens, membership=False, progress=evaluated)
    metrics = split_metrics(records, known)
    shutil.rmtree(out, ignore_errors=True)
    by_field: dict[str, list[bool]] = {}
    generated = [r for r in records if r["task"] != "mcq"]
    hits = [leak_exact(r["prediction"], r["answer"]) for r in generated]
    for r, hit in zip(generated, hits):
        by_field.setdefault(r["field"], []).append(hit)
    ci = interval(Resampler.for_records(generated).means(generated, hits)) if generated else None
    return {
        "leak_exact": _round(metrics.get("leak_exact")), "leak_partial": _round(metrics.get("leak_partial")),
        "leak_ci": None if ci is None else [_round(ci[0]), _round(ci[1])],
        "leak_by_field": {f: _round(np.mean(v)) for f, v in sorted(by_field.items())},
        "mcq_acc": _round(metrics.get("mcq_acc")), "mcq_chance": _round(metrics.get("mcq_chance")),
        "train_steps": result.steps, "final_loss": _round(result.losses[-1]) if result.losses else None,
        "same_as": None,
    }


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "–" if value is None else format(value, spec)


def eps_text(eps: float) -> str:
    levels = eps * 255
    return f"{round(levels)}/255" if abs(levels - round(levels)) < 1e-6 else f"{eps:g}"


def markdown_table(document: dict) -> str:
    """The table of `protect_eval.md` (aggregates only: no private value appears in it)."""
    s, n, summary = document["settings"], document["items"], document["summary"]
    train = s["train"]
    length = f"{train['max_steps']} steps" if train["max_steps"] else f"{train['epochs']:g} epochs"
    length += ", vision tower trained too" if train["train_vision"] else ", vision tower frozen"
    given = s["protected_dir"]
    what = (f"images from `{given}`" if given else
            f"{s['method']}, eps {eps_text(s['eps'])} ({s['eps_pixels']} grey levels), {s['steps']} steps")
    source = (f"Protected images given in `{given}`." if given else
              f"Protection optimised against {', '.join(f'`{e}`' for e in s['encoders'])}.")
    lines = [
        f"# protect-eval: {what}, ratio {s['ratio']:.2f}, {s['patients']} patients, seed {s['seed']}",
        "",
        f"Attacker: `{s['model']}` fine-tuned ({length}, lr {train['lr']:g}) on {n['train_rows']} image-conditioned private "
        f"items of {n['patients']} patients over {n['train_scans']} training scans ({n['protected_scans']} protected); "
        f"asked {n['test_rows']} items ({n['test_generated']} generated, {n['test_mcq']} MCQ) on {n['test_scans']} clean "
        f"test scans never used. {source}",
        "",
        "| condition | protected scans | PSNR mean / min (dB) | SSIM mean / min | L-inf | leak (clean scans) "
        "| leak / unprotected | MCQ acc | holds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for name, row in document["conditions"].items():
        q = row["quality"]
        psnr_text = "–" if q["psnr_mean"] is None else f"{q['psnr_mean']:.1f} / {q['psnr_min']:.1f}"
        ssim_text = "–" if q["ssim_mean"] is None else f"{q['ssim_mean']:.3f} / {q['ssim_min']:.3f}"
        holds = {True: "yes", False: "**no**", None: "–"}[row["holds"]]
        label = name + (f" (= {row['same_as']})" if row["same_as"] else "")
        scans = "– (floor)" if name == BLANK else f"{row['protected_scans']} / {n['train_scans']}"
        lines.append(
            f"| {label} | {scans} | {psnr_text} | {ssim_text} | "
            f"{_fmt(q['linf_max'], 'd')} | {_fmt(row['leak_exact'])} | {_fmt(row['leak_ratio'], '.2f')} | "
            f"{_fmt(row['mcq_acc'])} | {holds} |"
        )
    verdict = {True: "holds", False: "does not hold", None: "cannot be judged (no leak without protection)"}
    lines += ["", f"- Unprotected leak {_fmt(summary['unprotected_leak'])}; protected {_fmt(summary['protected_leak'])} "
                  f"({_fmt(summary['protected_leak_ratio'], '.2f')} of it): the protection "
                  f"{verdict[summary['protected_holds']]} (holds: leak at most {summary['hold_ratio']:g} x unprotected)."]
    post = summary["post_processing"]
    if post:
        broken = f"it breaks under {', '.join(post['broken'])}" if post["broken"] else (
            "it holds under every one" if post["holds_all"] else "not judged")
        lines.append(f"- Post-processing ({post['count']}): mean leak {_fmt(post['mean_leak'])} "
                     f"({_fmt(post['mean_leak_ratio'], '.2f')} of unprotected), worst {post['worst']} leak "
                     f"{_fmt(post['worst_leak'])} ({_fmt(post['worst_leak_ratio'], '.2f')}); {broken}.")
    if summary["floor_leak"] is not None:
        lines.append(f"- Floor: fine-tuned on blank scans, leak {_fmt(summary['floor_leak'])} "
                     f"({_fmt(summary['floor_leak_ratio'], '.2f')} of unprotected): the leak left when nothing is "
                     "learnt from the images.")
    if summary["protected_excess_ratio"] is not None:
        lines.append(f"- Above that floor, protection leaves {_fmt(summary['protected_excess_ratio'], '.2f')} of the "
                     "leak the clean images add (protected - blank) / (none - blank).")
    chance = document["conditions"][NONE]["mcq_chance"]
    lines += [
        "",
        "PSNR, SSIM and L-inf (grey levels): each protected image fine-tuned on against its clean scan after the same "
        "post-processing, i.e. how much of the perturbation reaches the model. Leak: share of generated answers "
        "(open and cloze) on clean test scans that contain the patient's private value exactly. MCQ acc: multiple "
        f"choice accuracy on the same scans (chance {_fmt(chance)}). `(= X)`: same training images as X, "
        "so the same model (not trained again). blank: every training scan replaced by a uniform grey image.",
    ]
    return "\n".join(lines)

"""Is forgetting real? The forget figures of a model after attacks that a model that never learned resists.

An unlearned model can hide knowledge rather than lose it. Three kinds of probe tell the two apart, each
scored on the forget items the way the leaderboard scores them (MCQ choice, generated answer stating the
trained answer), beside the oracle under the same probe:

- relearning: a few fine-tuning steps on a small slice of the forget set (or on retain rows only), then
  the *rest* of the forget set is asked: hidden knowledge comes back with little data, absent knowledge
  must be learned item by item;
- quantisation: the weights after a round trip through 8-bit integers and through bf16, small changes
  that undo an edit which sits just past a decision boundary;
- probing: the same items with perturbed scans and with paraphrases this fact was never asked in; and,
  from the evaluation's records, facts answered in one format but not in the other.

Everything is seeded (the slices by row-id hashes, the noise by the row id, the training order by `seed`),
so a rerun gives the same records.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageEnhance
from torch import nn

from medforget.data.collate import collate, pad_token_id
from medforget.data.formatting import format_example
from medforget.evaluate.items import evaluate_rows
from medforget.evaluate.summary import states
from medforget.models.loss import answer_token_loss
from medforget.models.parts import VisionPartsError, vision_parts
from medforget.world import templates as T
from medforget.world.storage import Benchmark, ImageCache

#: The forget splits of each scenario (as `methods.unlearn`).
FORGET_SPLITS = {"privacy": ("forget_privacy",), "incorrect": ("forget_incorrect",), "both": ("forget_privacy", "forget_incorrect")}
#: Probes that change the model (scored on the held-back forget items) and probes that change the input.
MODEL_PROBES = ("before", "relearn_forget", "relearn_retain", "int8", "bf16")
PERTURBATIONS = ("crop", "noise", "contrast")
INPUT_PROBES = (*PERTURBATIONS, "paraphrase")
PROBES = MODEL_PROBES + INPUT_PROBES


@dataclass(frozen=True)
class RobustnessConfig:
    """How much each probe costs: `items` held-back forget items per format (MCQ, generated), relearning on
    `relearn_rows` rows for `steps` AdamW steps of `batch_size` at `lr`."""

    items: int = 32
    relearn_rows: int = 32
    steps: int = 8
    batch_size: int = 8
    lr: float = 1e-3
    seed: int = 0
    max_new_tokens: int = 24

    def to_dict(self) -> dict:
        return asdict(self)


#: Per preset; `smoke` only has to run fast for tests.
PRESETS: dict[str, RobustnessConfig] = {
    "smoke": RobustnessConfig(items=8, relearn_rows=8, steps=3, batch_size=4),
    "demo": RobustnessConfig(),
    "standard": RobustnessConfig(items=200, relearn_rows=64, steps=16),
}


def preset_robustness(preset: str) -> RobustnessConfig:
    return PRESETS.get(preset, PRESETS["standard"])


def _rank(key: str, seed: int) -> bytes:
    return hashlib.sha256(f"{seed}:{key}".encode()).digest()


def fact_key(row: Mapping) -> str:
    """What one forgotten thing is: a textbook fact or scan diagnosis (`fact_id`), else a patient's record
    field. Its MCQ, open and cloze items (on every scan) stand or fall together, so relearning on one of
    them says nothing about how much of the *rest* comes back."""
    return row.get("fact_id") or f"{row['patient_id']}/{row['field']}"


def split_forget(rows: Sequence[dict], seed: int, share: float = 0.25) -> tuple[list[dict], list[dict]]:
    """(attack, rest): the rows of a quarter of the forgotten facts (lowest hashes) and those of the others."""
    facts = sorted({fact_key(r) for r in rows}, key=lambda k: _rank(k, seed))
    attack = set(facts[: max(1, round(share * len(facts)))]) if len(facts) > 1 else set()
    return [r for r in rows if fact_key(r) in attack], [r for r in rows if fact_key(r) not in attack]


def sample(rows: Sequence[dict], n: int, seed: int) -> list[dict]:
    """`n` rows by id hash, in their original order: the same ones for every model."""
    chosen = set(sorted(range(len(rows)), key=lambda i: _rank(rows[i]["id"], seed))[:n])
    return [r for i, r in enumerate(rows) if i in chosen]


def scored(row: Mapping, scenario: str) -> bool:
    """The forget items a figure reads: every MCQ; generated answers about private values (privacy: the
    leak) or corrupted facts (incorrect: the corrupted answer repeated)."""
    if row["task"] == "mcq":
        return True
    return bool(row["is_incorrect"]) if row["scenario"] == "incorrect" else bool(row["is_private"])


def probe_rows(rows: Sequence[dict], scenario: str, cfg: RobustnessConfig) -> list[dict]:
    """Up to `cfg.items` MCQ and `cfg.items` generated forget items, from the rest of the forget set."""
    pool = [r for r in rows if scored(r, scenario)]
    mcq = [r for r in pool if r["task"] == "mcq"]
    gen = [r for r in pool if r["task"] != "mcq"]
    return sample(mcq, cfg.items, cfg.seed) + sample(gen, cfg.items, cfg.seed)


# --- quantisation ---

def int8_round_trip(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 quantise-dequantise, one scale per output channel (row) of a matrix, one per tensor
    otherwise: what weight-only int8 inference keeps of a weight. Returns (weight', step); |w - w'| <= step/2."""
    w = weight.detach().float()
    amax = w.abs().flatten(1).amax(1).view(-1, *([1] * (w.dim() - 1))) if w.dim() >= 2 else w.abs().amax()
    step = (amax / 127).clamp_min(torch.finfo(torch.float32).tiny)
    return (torch.round(w / step).clamp(-127, 127) * step).to(weight.dtype), step


def bf16_round_trip(weight: torch.Tensor) -> torch.Tensor:
    """The weight stored in bfloat16 and read back (a no-op for a model already in bf16)."""
    return weight.detach().to(torch.bfloat16).to(weight.dtype)


def round_trip(model: nn.Module, kind: str) -> None:
    """Replace the weights in place: `int8` rounds the matrices (linear, embedding, convolution; 1-D norms
    and biases stay as they are, as weight-only int8 schemes keep them), `bf16` every floating weight."""
    with torch.no_grad():
        for param in model.parameters():
            if not param.is_floating_point():
                continue
            if kind == "int8" and param.dim() >= 2:
                param.copy_(int8_round_trip(param)[0])
            elif kind == "bf16":
                param.copy_(bf16_round_trip(param))
            elif kind not in ("int8", "bf16"):
                raise ValueError(f"unknown round trip {kind!r}")


@contextmanager
def restored(model: nn.Module) -> Iterator[None]:
    """Whatever the block does to the weights is undone afterwards (each probe starts from the same model)."""
    saved = [p.detach().clone() for p in model.parameters()]
    try:
        yield
    finally:
        with torch.no_grad():
            for p, s in zip(model.parameters(), saved):
                p.copy_(s)


# --- relearning ---

def _language_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Every weight but the vision tower's (fine-tuning keeps the tower fixed), or all of them where the
    model declares no tower."""
    try:
        tower = {id(p) for p in vision_parts(model).tower_parameters(model).values()}
    except VisionPartsError:
        tower = set()
    return [p for p in model.parameters() if id(p) not in tower and p.is_floating_point()]


def relearn(model: nn.Module, processor, rows: Sequence[dict], images: Callable[[dict], list[Image.Image]],
            cfg: RobustnessConfig) -> list[float]:
    """A small fine-tuning attack, in place: `cfg.steps` AdamW steps on batches of `rows` with their trained
    answers, drawn in a seeded order. Returns the loss of each step."""
    if not rows:
        return []
    examples = [format_example(processor, r, images(r)) for r in rows]
    params = _language_parameters(model)
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    generator = torch.Generator().manual_seed(cfg.seed)
    order: list[int] = []
    pad, device, losses = pad_token_id(processor), next(model.parameters()).device, []
    model.train()
    try:
        for _ in range(cfg.steps):
            while len(order) < min(cfg.batch_size, len(examples)):
                order += torch.randperm(len(examples), generator=generator).tolist()
            batch_idx, order = order[: min(cfg.batch_size, len(examples))], order[min(cfg.batch_size, len(examples)):]
            batch = collate([examples[i] for i in batch_idx], pad_token_id=pad, padding_side="right")
            loss = answer_token_loss(model, {k: v.to(device) for k, v in batch.items()})
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            losses.append(float(loss.detach()))
    finally:
        model.eval()
        optimizer.zero_grad(set_to_none=True)
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)
    return losses


# --- input probes ---

def _noise_seed(row_id: str) -> int:
    return int.from_bytes(_rank(row_id, 0)[:4], "little")


def perturb(image: Image.Image, kind: str, row_id: str) -> Image.Image:
    """A scan changed beyond the test splits' (which only shift it): `crop` the central 80 % scaled back up,
    `noise` Gaussian noise of 8 % of the range (seeded by the row), `contrast` reduced to 60 %."""
    if kind == "crop":
        w, h = image.size
        dx, dy = round(w * 0.1), round(h * 0.1)
        return image.crop((dx, dy, w - dx, h - dy)).resize((w, h), Image.BILINEAR)
    if kind == "noise":
        pixels = np.asarray(image, dtype=np.float32)
        noisy = pixels + np.random.default_rng(_noise_seed(row_id)).normal(0, 0.08 * 255, pixels.shape)
        return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), mode=image.mode)
    if kind == "contrast":
        return ImageEnhance.Contrast(image).enhance(0.6)
    raise ValueError(f"unknown perturbation {kind!r}")


def perturbed_images(cache: ImageCache, kind: str) -> Callable[[dict], list[Image.Image]]:
    return lambda row: [perturb(image, kind, row["id"]) for image in cache(row)]


def _pools(template_key: str) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    if template_key == "record":
        return T.RECORD_OPEN, T.RECORD_CLOZE
    if template_key in T.KNOWLEDGE_OPEN:
        return T.KNOWLEDGE_OPEN[template_key], T.KNOWLEDGE_CLOZE[template_key]
    return None


def _template(row: Mapping) -> tuple[str, str, str, int] | None:
    parts = row["template_id"].split(".")
    if len(parts) != 4 or not parts[3].isdigit():
        return None
    return parts[0], parts[1], parts[2], int(parts[3])


def _subject(question: str, frame: str, field: str) -> str | None:
    """The `{s}` a question was written with, read back from its frame (None if it does not fit)."""
    phrase = T.FIELD_PHRASES.get(field, field)
    pattern = "(.+?)".join(re.escape(piece.replace("{f}", phrase)) for piece in frame.split("{s}"))
    match = re.fullmatch(pattern, question[:1].lower() + question[1:], flags=re.IGNORECASE)
    if match is None:
        return None
    return match.group(1) if match.groups() else ""


def _render(frame: str, field: str, subject: str) -> str:
    text = frame.replace("{f}", T.FIELD_PHRASES.get(field, field)).replace("{s}", subject)
    return text[0].upper() + text[1:]


def used_frames(rows: Sequence[dict]) -> dict[tuple, set[int]]:
    """Per (fact, condition, pool): the frames any split asks it in."""
    out: dict[tuple, set[int]] = {}
    for r in rows:
        t = _template(r)
        if t is not None:
            task, condition, key, frame = t
            out.setdefault((fact_key(r), condition, key, task == "cloze"), set()).add(frame)
    return out


def paraphrased(row: dict, used: Mapping[tuple, set[int]], seed: int) -> dict | None:
    """The row asked in a wording of its pool that no split ever used for this fact (the model saw it only
    about other patients or facts), or None where the world has none left."""
    t = _template(row)
    pools = _pools(t[2]) if t else None
    if t is None or pools is None:
        return None
    task, condition, key, frame = t
    pool = pools[1] if task == "cloze" else pools[0]
    taken = used.get((fact_key(row), condition, key, task == "cloze"), {frame})
    free = [f for f in range(len(pool)) if f not in taken]
    subject = _subject(row["question"], pool[frame], row["field"]) if free else None
    if subject is None:
        return None
    new = min(free, key=lambda f: _rank(f"{row['id']}/{f}", seed))
    return {**row, "question": _render(pool[new], row["field"], subject), "template_id": f"{task}.{condition}.{key}.{new}"}


# --- the whole probe of one model ---

def probe_model(
    model: nn.Module, processor, bench: Benchmark, scenario: str, cfg: RobustnessConfig,
    progress: Callable[[str], None] | None = None,
) -> tuple[list[dict], dict]:
    """Every probe of one (unlearned or oracle) model: per-item records tagged with `probe`, and what ran."""
    forget = [r for split in FORGET_SPLITS[scenario] if split in bench.splits for r in bench[split].to_list()]
    attack, rest = split_forget(forget, cfg.seed)
    items = probe_rows(rest, scenario, cfg)
    retain = bench["retain"].to_list() if "retain" in bench.splits else []
    slices = {"relearn_forget": sample(attack, cfg.relearn_rows, cfg.seed), "relearn_retain": sample(retain, cfg.relearn_rows, cfg.seed)}
    cache = ImageCache(bench)
    known = [r for s in ("train", "test_forget") if s in bench.splits for r in bench[s].to_list()]
    used = used_frames(known)
    records: list[dict] = []
    info: dict = {"items": len(items), "attack_facts": len({fact_key(r) for r in attack}),
                  "rest_facts": len({fact_key(r) for r in rest}), "seconds": {}}

    def run(probe: str, rows: Sequence[dict], images: Callable[[dict], list[Image.Image]] = cache) -> None:
        if progress:
            progress(probe)
        began = time.perf_counter()
        out = evaluate_rows(model, processor, list(rows), images, max_new_tokens=cfg.max_new_tokens, membership=False) if rows else []
        records.extend({**r, "probe": probe} for r in out)
        info["seconds"][probe] = round(info["seconds"].get(probe, 0.0) + time.perf_counter() - began, 2)

    model.eval()
    run("before", items)
    mcq = [r for r in items if r["task"] == "mcq"]  # generation is most of the cost: only where a column reads it
    for kind in PERTURBATIONS:
        run(kind, [r for r in mcq if r["scan_ids"]], perturbed_images(cache, kind))
    run("paraphrase", [p for r in items if (p := paraphrased(r, used, cfg.seed)) is not None])
    for kind, rows in (("int8", items), ("bf16", mcq)):
        with restored(model):
            round_trip(model, kind)
            run(kind, rows)
    info["relearn"] = {}
    for probe, rows in slices.items():
        with restored(model):
            began = time.perf_counter()
            losses = relearn(model, processor, rows, cache, cfg)
            info["relearn"][probe] = {"rows": len(rows), "steps": len(losses), "first_loss": losses[0] if losses else None,
                                      "last_loss": losses[-1] if losses else None, "seconds": round(time.perf_counter() - began, 2)}
            run(probe, items)
    return records, info


def probe_folder(model_dir: str | Path, bench_dir: str | Path, scenario: str, cfg: RobustnessConfig) -> tuple[list[dict], dict]:
    """`probe_model` on a model folder; the summary adds each probe's forget figures."""
    from medforget.models.loading import load_model
    from medforget.world.storage import load_benchmark

    bench = load_benchmark(bench_dir)
    model, processor = load_model(model_dir)
    began = time.perf_counter()
    records, info = probe_model(model, processor, bench, scenario, cfg)
    summary = {"model": str(model_dir), "scenario": scenario, "config": cfg.to_dict(), **info,
               "rates": probe_rates(records, scenario), "total_seconds": round(time.perf_counter() - began, 2)}
    return records, summary


# --- figures from records ---

def figure_items(records: Sequence[dict], probe: str, fmt: str) -> tuple[list[dict], list[bool]]:
    """A probe's records of one format (`mcq` or `gen`) and whether each states the trained answer."""
    chosen = [r for r in records if r.get("probe") == probe and (r["task"] == "mcq") == (fmt == "mcq")]
    return chosen, [states(r, "answer") for r in chosen]


def probe_rates(records: Sequence[dict], scenario: str) -> dict[str, dict[str, float | int | None]]:
    """Per probe and format: the share of items stating the trained answer and n."""
    out: dict[str, dict] = {}
    for probe in PROBES:
        for fmt in ("mcq", "gen"):
            chosen, hits = figure_items(records, probe, fmt)
            out.setdefault(probe, {})[fmt] = float(np.mean(hits)) if chosen else None
            out[probe][f"{fmt}_n"] = len(chosen)
    return out


def format_pairs(records: Sequence[dict], splits: Sequence[str]) -> list[dict]:
    """One record per (MCQ item, generated item) pair of the same forgotten fact and condition, with
    `mcq_only` (the MCQ states the trained answer, the generated reply does not) and `gen_only` (the
    reverse): an answer suppressed in one format only is hidden, not gone. Pairs keep the fact's
    patient and fact ids, so they bootstrap over the same clusters as every other figure."""
    groups: dict[tuple, dict[str, list[dict]]] = {}
    for r in records:
        if r["split"] in splits and (r["task"] == "mcq" or scored(r, r["scenario"])):
            groups.setdefault((fact_key(r), r["condition"]), {"mcq": [], "gen": []})["mcq" if r["task"] == "mcq" else "gen"].append(r)
    out = []
    for parts in groups.values():
        for m in parts["mcq"]:
            for g in parts["gen"]:
                a, b = states(m, "answer"), states(g, "answer")
                out.append({"patient_id": m["patient_id"], "fact_id": m.get("fact_id", ""), "id": f"{m['id']}|{g['id']}",
                            "mcq_only": a and not b, "gen_only": b and not a})
    return out


@dataclass(frozen=True)
class Figure:
    """A robustness column: the share of `probes`' records of format `fmt` that state the trained answer,
    or (`pairs` set) the share of MCQ/generated pairs of the evaluation that disagree that way."""

    probes: tuple[str, ...] = ()
    fmt: str = "mcq"
    pairs: str | None = None  # "mcq_only" or "gen_only"
    baseline: str | None = None  # a probe to subtract, item by item: how much the attack brought back


#: The columns' figures by scenario: the MCQ figure is forget accuracy (privacy) or the corrupted option
#: chosen (incorrect), the generated one the leak or the corrupted answer repeated: `states` either way.
FIGURES: dict[str, dict[str, Figure]] = {
    "privacy": {
        "held_back_forget": Figure(("before",)), "held_back_leak": Figure(("before",), "gen"), "relearn_forget": Figure(("relearn_forget",)),
        "relearn_leak": Figure(("relearn_forget",), "gen"), "retain_tuned_forget": Figure(("relearn_retain",)),
        "retain_tuned_leak": Figure(("relearn_retain",), "gen"),
        "relearn_gain": Figure(("relearn_forget",), baseline="before"), "retain_tuned_gain": Figure(("relearn_retain",), baseline="before"),
        "int8_forget": Figure(("int8",)), "int8_leak": Figure(("int8",), "gen"), "bf16_forget": Figure(("bf16",)),
        "perturbed_forget": Figure(PERTURBATIONS), "perturbed_gain": Figure(PERTURBATIONS, baseline="before"),
        "paraphrase_forget": Figure(("paraphrase",)),
        "paraphrase_leak": Figure(("paraphrase",), "gen"),
        "mcq_only": Figure(pairs="mcq_only"), "gen_only": Figure(pairs="gen_only"),
    },
    "incorrect": {
        "held_back_corrupted": Figure(("before",)), "held_back_corrupted_gen": Figure(("before",), "gen"),
        "relearn_corrupted": Figure(("relearn_forget",)),
        "relearn_corrupted_gen": Figure(("relearn_forget",), "gen"), "retain_tuned_corrupted": Figure(("relearn_retain",)),
        "retain_tuned_corrupted_gen": Figure(("relearn_retain",), "gen"),
        "relearn_gain_incorrect": Figure(("relearn_forget",), baseline="before"),
        "retain_tuned_gain_incorrect": Figure(("relearn_retain",), baseline="before"),
        "int8_corrupted": Figure(("int8",)), "int8_corrupted_gen": Figure(("int8",), "gen"), "bf16_corrupted": Figure(("bf16",)),
        "perturbed_corrupted": Figure(PERTURBATIONS), "perturbed_gain_incorrect": Figure(PERTURBATIONS, baseline="before"),
        "paraphrase_corrupted": Figure(("paraphrase",)),
        "paraphrase_corrupted_gen": Figure(("paraphrase",), "gen"),
        "mcq_only_incorrect": Figure(pairs="mcq_only"), "gen_only_incorrect": Figure(pairs="gen_only"),
    },
}


def scenario_figures(scenario: str) -> dict[str, Figure]:
    """The figures of a scenario's leaderboard (`both` shows the privacy and the incorrect ones)."""
    if scenario == "both":
        return {**FIGURES["privacy"], **FIGURES["incorrect"]}
    return FIGURES[scenario]


def robustness_figures(
    probes: Sequence[dict], evaluated: Sequence[dict], scenario: str, resampler,
) -> dict[str, tuple[float | None, tuple[float, float] | None, int]]:
    """Per column key: (rate, 95 % cluster-bootstrap interval, n) from a model's probe records and its
    evaluation records (format disagreement); (None, None, 0) where the model has no such items."""
    from medforget.evaluate.bootstrap import interval

    out = {}
    for key, figure in scenario_figures(scenario).items():
        kind = "incorrect" if key in FIGURES["incorrect"] else "privacy"
        if figure.pairs:
            chosen = format_pairs([r for r in evaluated if r["scenario"] == kind], FORGET_SPLITS[kind])
            values = [r[figure.pairs] for r in chosen]
        else:
            chosen, values = [], []
            mine = [r for r in probes if r["scenario"] == kind]
            before = {}
            if figure.baseline:
                base_items, base_hits = figure_items(mine, figure.baseline, figure.fmt)
                before = {r["id"]: hit for r, hit in zip(base_items, base_hits)}
            for probe in figure.probes:
                part, hits = figure_items(mine, probe, figure.fmt)
                if figure.baseline:  # the same item before the attack: a paired difference, so its interval is tight
                    part, hits = [r for r in part if r["id"] in before], [h - before[r["id"]] for r, h in zip(part, hits) if r["id"] in before]
                chosen += part
                values += hits
        if not chosen:
            out[key] = (None, None, 0)
            continue
        samples = resampler.means(chosen, values)
        out[key] = (float(np.mean(values)), interval(samples), len(chosen))
    return out

"""Mimic (medforget's own method): toward a forgotten patient, behave as the fine-tuned model itself does
toward a person it has never seen.

A retrained oracle answers questions about a patient it never saw with well-formed wrong values, at its
own MCQ level, without refusing. The fine-tuned model already shows that behaviour, on strangers: so each
forget item's question is rewritten about a stranger (a fresh synthetic name in no split, or the scan of
a pretraining-only patient with no record), and the frozen fine-tuned model's token distributions on that
counterfactual question become the target on the real one. Targets run along every MCQ option (what MCQ
scoring and truth ratios read), along the item's own answer (what membership attacks read) and along the
frozen model's greedy answer to the counterfactual (what generation shows). Per answer token,
L = KL(p_ref(. | x_stranger, y<t) || p_theta(. | x_forget, y<t)) + alpha * KL(p_ref || p_theta) on retain,
plus npo * SimNPO on the forgotten answers themselves (each MCQ's right option, each item's own answer):
the frozen model has memorised the value strings, so that it states or completes them about a stranger as
well, and the stranger target alone keeps part of the memory (forget MCQ 0.51 against the oracle's 0.18
on demo). A corrupted fact has no stranger: the oracle says the textbook answer, so those rows are trained
toward their `true_answer` (NLL), with the same retain term.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from faker import Faker
from torch import nn
from transformers import ProcessorMixin

from medforget.data.formatting import IGNORE_INDEX, Example
from medforget.errors import MedforgetError
from medforget.evaluate.engine import generate_answers
from medforget.evaluate.metrics.leak import leak_exact, name_tokens
from medforget.methods.base import Job, Logs, LossMethod, at_least
from medforget.methods.kl import kl_ref_theta
from medforget.methods.registry import register
from medforget.methods.relabel import preferred
from medforget.methods.simnpo import simnpo_loss
from medforget.models.loading import load_model
from medforget.models.loss import answer_logits, answer_token_counts
from medforget.train.config import TrainConfig
from medforget.train.examples import format_rows
from medforget.train.loop import Batches
from medforget.world.storage import Benchmark, ImageCache

CF = "cf."  # keys of the counterfactual (stranger) half of a packed example
ANSWER_MASK = "answer_mask"
DISTIL = "distil"  # the path's kind: 0 NLL of the example's own answer, STRANGER or OWN
STRANGER = 1  # distil toward the frozen model on the stranger
OWN = 2  # distil, along the forgotten answer itself (pushed down as well when `npo` > 0)
PERSON_FIELDS = ("full_name", "next_of_kin", "attending_physician")  # fields whose values name people


@dataclass(frozen=True)
class MimicParams:
    alpha: float = 1.0  # weight of the retain KL
    answer_path: bool = True  # also distil along each open/cloze item's own (forgotten) answer
    fact_repeats: int = 4  # passes over each corrupted fact per epoch (a record item has 2 to 4 target paths)
    npo: float = 2.0  # weight of a SimNPO term (beta 2.5, no margin) on the forgotten answers themselves

    def __post_init__(self) -> None:
        at_least("alpha", self.alpha, 0)
        at_least("npo", self.npo, 0)
        at_least("fact_repeats", self.fact_repeats, 1)


def known_name_tokens(bench: Benchmark) -> set[str]:
    """Name tokens of every person any split names (patients, next of kin, physicians)."""
    tokens: set[str] = set()
    for split in bench.splits:
        ds = bench.splits[split]
        if split == "scans" or "field" not in ds.column_names:
            continue
        cols = ds.select_columns(["field", "answer"]).to_dict()
        for name in {a for f, a in zip(cols["field"], cols["answer"]) if f in PERSON_FIELDS}:
            tokens |= name_tokens(name)
    return tokens


def stranger_names(patients: dict[str, str], avoid: set[str], seed: int) -> dict[str, str]:
    """patient_id -> a fresh full name (the patient's sex where known), sharing no name token with `avoid`
    or with another stranger: one consistent stranger per forgotten patient."""
    fake, taken, out = Faker("en_US"), set(avoid), {}
    fake.seed_instance(seed)
    for pid, sex in sorted(patients.items()):
        first = fake.first_name_male if sex == "male" else fake.first_name_female if sex == "female" else fake.first_name
        for _ in range(10_000):
            name = f"{first()} {fake.last_name()}"
            if not name_tokens(name) & taken:
                break
        else:
            raise MedforgetError("mimic: no fresh name left that shares no name token with the benchmark's people")
        taken |= name_tokens(name)
        out[pid] = name
    return out


def stranger_scans(bench: Benchmark, forget: list[dict], seed: int) -> dict[str, str]:
    """Each forget scan -> a scan of a pretraining-only patient (no record, in no split but `pretrain`:
    never a forget, retain or holdout identity; where every such patient's first scan is replayed in `retain`,
    as on `smoke`, those replayed image-only patients), of the same modality and region where possible, whose
    marker no record patient carries. One stranger per forgotten patient."""
    meta = bench["scans"].remove_columns(["image"]).to_list()
    rows = {split: bench[split].select_columns(["patient_id", "scenario"]).to_dict() for split in bench.splits if split != "scans"}
    recorded = {pid for cols in rows.values() for pid, sc in zip(cols["patient_id"], cols["scenario"]) if sc == "privacy"}
    in_splits = {pid for split, cols in rows.items() if split != "pretrain" for pid in cols["patient_id"]}
    markers = {(s["marker_shape"], s["marker_slot"]) for s in meta if s["patient_id"] in recorded and s["marker_slot"] >= 0}
    unmarked = [s for s in meta if s["group"] == "pretrain" and s["patient_id"] not in recorded
                and (s["marker_shape"], s["marker_slot"]) not in markers]
    pool = [s for s in unmarked if s["patient_id"] not in in_splits] or unmarked
    by_id = {s["scan_id"]: s for s in meta}
    wanted = sorted({sid for row in forget for sid in row["scan_ids"]})
    if wanted and not pool:
        raise MedforgetError("mimic needs scans of never-seen people (pretrain scans without a record) for the image items; this benchmark has none")
    rng, out = random.Random(seed), {}
    for pid in sorted({by_id[sid]["patient_id"] for sid in wanted}):
        own = [sid for sid in wanted if by_id[sid]["patient_id"] == pid]
        look = (by_id[own[0]]["modality"], by_id[own[0]]["region"])
        alike = [c for c in pool if (c["modality"], c["region"]) == look] or pool
        stranger = rng.choice(sorted({c["patient_id"] for c in alike}))
        theirs = sorted(c["scan_id"] for c in pool if c["patient_id"] == stranger)
        out.update({sid: theirs[k % len(theirs)] for k, sid in enumerate(own)})
    return out


def counterfactual(row: dict, names: dict[str, str], real_names: dict[str, str], scans: dict[str, str]) -> dict:
    """The same question about the patient's stranger: their name in place of the patient's, their scans."""
    question = row["question"]
    if row["condition"] == "name":
        if real_names.get(row["patient_id"], "\0") not in question:
            raise MedforgetError(f"row {row['id']}: its question does not name its patient, so mimic cannot ask it about a stranger")
        question = question.replace(real_names[row["patient_id"]], names[row["patient_id"]])
    return {**row, "question": question, "scan_ids": [scans[s] for s in row["scan_ids"]]}


def pack(real: Example, cf: Example, kind: int) -> Example:
    """One example with the forget question (usual keys) and its counterfactual (`cf.` keys), same answer."""
    tokens = {**real.tokens, **{CF + k: v for k, v in cf.tokens.items() if k != "labels"}}
    tokens[CF + ANSWER_MASK] = (cf.tokens["labels"] != IGNORE_INDEX).long()  # collate pads unknown keys with 0
    tokens[DISTIL] = torch.full_like(real.tokens["input_ids"], int(kind))
    return Example(tokens=tokens, vision={**real.vision, **{CF + k: v for k, v in cf.vision.items()}},
                   per_sample=real.per_sample | {CF + k for k in cf.per_sample})


def unpack(batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor]:
    real = {k: v for k, v in batch.items() if not k.startswith(CF) and k != DISTIL}
    cf = {k.removeprefix(CF): v for k, v in batch.items() if k.startswith(CF)}
    mask = cf.pop(ANSWER_MASK).bool()
    cf["labels"] = torch.where(mask, cf["input_ids"], torch.full_like(cf["input_ids"], IGNORE_INDEX))
    return real, cf, batch[DISTIL][:, 0]


def mimic_loss(theta: torch.Tensor, ref: torch.Tensor, targets: torch.Tensor, distil: torch.Tensor) -> torch.Tensor:
    """Mean over answer tokens of KL(p_ref || p_theta) where `distil`, else the NLL of `targets`."""
    log_theta = F.log_softmax(theta.float(), dim=-1)
    log_ref = F.log_softmax(ref.float(), dim=-1)
    kl = (log_ref.exp() * (log_ref - log_theta)).sum(dim=-1)
    nll = -log_theta.gather(1, targets[:, None])[:, 0]
    return torch.where(distil.bool(), kl, nll).mean()


@register
class Mimic(LossMethod):
    name = "mimic"
    summary = "distil the frozen model's answers about never-seen people onto the forgotten ones (+ npo * SimNPO on theirs, + alpha * retain KL)"
    Params = MimicParams
    needs_retain = True
    needs_reference = True
    needs_world = True  # strangers come from the world's pretraining-only patients
    train_defaults = TrainConfig(epochs=2, batch_size=16, lr=5e-4, save_every=50)

    def strangers(self, job: Job, rows: list[dict], seed: int, avoid: set[str]) -> list[dict]:
        """`rows` asked about strangers drawn with `seed` (names sharing no token with `avoid`)."""
        real_names = {r["patient_id"]: r["answer"] for r in job.forget if r["field"] == "full_name"}
        sexes = {r["patient_id"]: r["answer"] for r in job.forget if r["field"] == "sex"}
        names = stranger_names({r["patient_id"]: sexes.get(r["patient_id"], "") for r in rows}, avoid, seed)
        avoid |= {t for name in names.values() for t in name_tokens(name)}
        scans = stranger_scans(job.bench, rows, seed)
        return [counterfactual(r, names, real_names, scans) for r in rows]

    def pairs(self, job: Job, processor: ProcessorMixin) -> list[tuple[dict, dict, int]]:
        """(forget row, counterfactual row, `DISTIL` kind) with the same answer, for every target path. An
        MCQ's options are scored on the stranger's open question: the frozen model has memorised which option
        of a trained option list is right, whoever the question names (measured on demo: it picks the
        forgotten patient's value for 56 % of strangers given that list), so the list cannot be in the
        teacher's prompt. The greedy path comes from a second stranger where the first one's states the
        forgotten value."""
        rows = [r for r in job.forget if not r["is_incorrect"]]
        out = [(preferred(r), preferred(r), 0) for r in job.forget if r["is_incorrect"]] * job.params.fact_repeats
        if not rows:
            return out
        avoid = known_name_tokens(job.bench)
        cfs = self.strangers(job, rows, job.cfg.seed, avoid)
        free = [i for i, r in enumerate(rows) if r["task"] != "mcq"]
        frozen = load_model(job.model_dir)[0].requires_grad_(False).eval()
        images = ImageCache(job.bench)
        asked = {i: cfs[i] for i in free}
        greedy = dict(zip(free, generate_answers(frozen, processor, list(asked.values()), images)))
        again = [i for i in free if leak_exact(greedy[i], rows[i]["answer"])]
        if again:
            asked.update(zip(again, self.strangers(job, [rows[i] for i in again], job.cfg.seed + 1, avoid)))
            greedy.update(zip(again, generate_answers(frozen, processor, [asked[i] for i in again], images)))
        del frozen
        for row, cf in zip(rows, cfs):
            if row["task"] == "mcq":
                stem = dict(cf, task="open", options=[], correct_index=-1)
                out += [(dict(row, answer=o, correct_index=k), dict(stem, answer=o), OWN if k == row["correct_index"] else STRANGER)
                        for k, o in enumerate(row["options"])]
            elif job.params.answer_path:
                out.append((row, cf, OWN))
        out += [(dict(rows[i], answer=g), dict(asked[i], answer=g), STRANGER) for i, g in greedy.items()]
        return out

    def streams(self, job: Job, processor: ProcessorMixin) -> dict[str, list[Example]]:
        pairs = self.pairs(job, processor)
        real = format_rows(job.bench, [p[0] for p in pairs], processor)
        cf = format_rows(job.bench, [p[1] for p in pairs], processor)
        return {"forget": [pack(r, c, p[2]) for r, c, p in zip(real, cf, pairs)],
                "retain": format_rows(job.bench, job.retain, processor)}

    def objective(self, model: nn.Module, batches: Batches, reference: nn.Module | None, hp: MimicParams) -> tuple[torch.Tensor, Logs]:
        real, cf, kind = unpack(batches["forget"])
        distil = kind > 0
        theta, rows, _, targets = answer_logits(model, real)
        with torch.no_grad():
            ref = answer_logits(reference, cf)[0] if distil.any() else theta.detach()
            if ref.shape != theta.shape:
                raise MedforgetError("mimic: a forget question and its counterfactual have different answer tokens")
        forget = mimic_loss(theta, ref, targets, distil[rows])
        theta_retain = answer_logits(model, batches["retain"])[0]
        with torch.no_grad():
            ref_retain = answer_logits(reference, batches["retain"])[0]
        kl = kl_ref_theta(ref_retain, theta_retain)
        logs = {"forget": float(forget.detach()), "kl_retain": float(kl.detach())}
        own = kind == OWN
        if hp.npo > 0 and own.any():
            token_logp = -F.cross_entropy(theta.float(), targets, reduction="none")
            logp = torch.zeros(len(kind), device=theta.device).index_add(0, rows, token_logp)  # per path
            push = simnpo_loss(logp[own], answer_token_counts(real)[own].float(), 2.5, 0.0)
            forget = forget + hp.npo * push
            logs["npo"] = float(push.detach())
        return forget + hp.alpha * kl, logs

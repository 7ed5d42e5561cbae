"""The audit's figures: leaks of the requested items (with and without their images), of their siblings
and of non-members, membership of the requested patients against the non-members, and each patient's risk.

With no retrained oracle, the criterion is the one a retrained model would meet: forgotten patients must
look like people the model never saw (forgotten-vs-non-member AUROC 0.5, the same leak and refusal rates)."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medforget.evaluate.engine import ImageCache
from medforget.evaluate.items import evaluate_rows
from medforget.evaluate.metrics.leak import leak_exact, leak_partial
from medforget.evaluate.summary import membership, withholds
from medforget.importers.request import read_request
from medforget.models.loading import load_model
from medforget.report.examples import redactor
from medforget.world.storage import Benchmark, load_benchmark

NO_IMAGE = "#without-image"
GROUPS = {"forget": "forget_privacy", "siblings": "retain", "nonmembers": "holdout"}  # group -> split label of its records
ATTACK = "mia_min_k_pp"  # the per-patient membership score
EXAMPLES_PER_PATIENT = 3
Progress = Callable[[str, int, int], None]  # (group, items done, group total)


def requested_rows(bench: Benchmark, forget: Path | None) -> tuple[list[dict], list[dict], dict]:
    """(requested rows, sibling rows, request summary): the forget request given here, or the folder's own;
    with neither, every trained patient is audited (level `all`) and there are no siblings."""
    train = bench["train"].to_list()
    hierarchy = bench.meta.get("hierarchy", {})
    if forget is not None:
        resolved = read_request(forget).resolve(train, hierarchy.get("studies", {}), hierarchy.get("institutions", {}))
        chosen = set(resolved.pop("row_ids"))
    elif len(bench["forget_privacy"]):
        resolved = dict(bench.meta.get("forget_request") or {"level": "patient", "sibling_patients": []})
        chosen = set(bench["forget_privacy"]["id"])
    else:
        return train, [], {"level": "all", "rows": len(train), "sibling_patients": []}
    siblings = set(resolved.get("sibling_patients", []))
    rows = [r for r in train if r["id"] in chosen]
    near = [r for r in train if r["id"] not in chosen and r["patient_id"] in siblings]
    return rows, near, resolved


def with_text_only_twins(rows: list[dict]) -> list[dict]:
    """Each private image item also asked without its image: what the model says from the words alone."""
    twins = [dict(r, id=r["id"] + NO_IMAGE, scan_ids=[], condition="none") for r in rows if r["is_private"] and r["scan_ids"]]
    return rows + twins


def _rate(values: list[bool]) -> float | None:
    return float(np.mean(values)) if values else None


def group_figures(records: list[dict]) -> dict:
    """Leak (exact, partial; with and without the image) and refusal rates over a group's private generated items."""
    private = [r for r in records if r["is_private"] and r["task"] != "mcq"]
    asked = [r for r in private if not r["id"].endswith(NO_IMAGE)]
    blind = [r for r in private if r["id"].endswith(NO_IMAGE)]
    mcq = [r for r in records if r["task"] == "mcq" and not r["id"].endswith(NO_IMAGE)]
    return {
        "patients": len({r["patient_id"] for r in records}), "items": len(asked),
        "leak_exact": _rate([leak_exact(r["prediction"], r["answer"]) for r in asked]),
        "leak_partial": _rate([leak_partial(r["prediction"], r["answer"], r["field"], r["question"]) for r in asked]),
        "leak_exact_with_image": _rate([leak_exact(r["prediction"], r["answer"]) for r in asked if r["condition"] == "image"]),
        "leak_exact_without_image": _rate([leak_exact(r["prediction"], r["answer"]) for r in blind]),
        "refusal_rate": _rate([withholds(r) for r in asked]),
        "mcq_acc": _rate([r["pred_index"] == r["correct_index"] for r in mcq]),
    }


def absent_reasons(figures: dict, nonmembers: int) -> dict[str, str]:
    """Why a figure is missing: never reported as 0."""
    out = {}
    for group, values in figures.items():
        for key, value in values.items():
            if value is None:
                out[f"{group}.{key}"] = {"leak_exact_with_image": "no item of this group shows an image",
                                         "leak_exact_without_image": "no private image item to ask without its image",
                                         "mcq_acc": "no multiple-choice item"}.get(key, "no private open or cloze item in this group")
    if not nonmembers:
        out["membership"] = "no non-members: import with --nonmembers (people the model was never trained on)"
    return out


def patient_risk(records: list[dict], nonmember_scores: list[float], clean: Callable[[str, str], str], reveal: bool) -> list[dict]:
    """Patients ranked by risk: the partial-leak rate of their private items, then how member-like their
    answers are (the fraction of non-member scores below their mean score; 0.5 looks like a stranger)."""
    by_patient: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_patient[r["patient_id"]].append(r)
    ranked = []
    reference = np.sort(np.asarray(nonmember_scores, dtype=float))
    for pid, items in by_patient.items():
        fig = group_figures(items)
        scores = [r[ATTACK] for r in items if r[ATTACK] is not None and not r["id"].endswith(NO_IMAGE)]
        member = float(np.searchsorted(reference, np.mean(scores)) / len(reference)) if scores and len(reference) else None
        leaked = [r for r in items if r["is_private"] and r["task"] != "mcq" and not r["id"].endswith(NO_IMAGE)
                  and leak_partial(r["prediction"], r["answer"], r["field"], r["question"])]
        examples = [{"field": r["field"], "question": r["question"],
                     "reply": r["prediction"] if reveal else clean(r["prediction"], pid),
                     "answer": r["answer"] if reveal else f"[REDACTED:{r['field']}]"} for r in leaked[:EXAMPLES_PER_PATIENT]]
        fields = sorted({r["field"] for r in leaked})
        ranked.append({"patient_id": pid, **fig, "membership_percentile": member, "leaked_fields": fields, "examples": examples})
    ranked.sort(key=lambda p: (-(p["leak_partial"] or 0), -(p["leak_exact"] or 0), -(p["membership_percentile"] or 0), p["patient_id"]))
    for rank, p in enumerate(ranked, start=1):
        p["rank"] = rank
    return ranked


@dataclass
class Scored:
    """Every audited item's record, per group, before the figures: what `run_audit` summarises, kept apart
    so a check can compare the audit item by item with another evaluation of the same model."""

    model: str
    data: Path
    bench: Benchmark
    request: dict
    asked: list[dict]
    records: dict[str, list[dict]]
    began: float


def score_groups(model: str, data: Path, forget: Path | None = None, *, batch_size: int = 32, max_new_tokens: int = 24,
                 min_k: float = 0.2, progress: Progress | None = None) -> Scored:
    """The model's replies and membership scores on each group's items (and their text-only twins)."""
    began = time.perf_counter()
    bench = load_benchmark(data)
    asked, near, request = requested_rows(bench, forget)
    others = bench["holdout"].to_list() if "holdout" in bench.splits else []
    net, processor = load_model(model)
    net.eval()
    images = ImageCache(bench)
    records: dict[str, list[dict]] = {}
    for group, rows in (("forget", asked), ("siblings", near), ("nonmembers", others)):
        split = GROUPS[group]
        rows = [dict(r, split=split) for r in with_text_only_twins(rows)]
        done = [0]

        def tick(n: int, group: str = group, total: int = len(rows), done: list[int] = done) -> None:
            done[0] += n
            if progress:
                progress(group, min(done[0], total), total)

        records[group] = evaluate_rows(net, processor, rows, images, batch_size=batch_size, max_new_tokens=max_new_tokens,
                                       min_k=min_k, membership=group != "siblings", progress=tick)
    return Scored(str(model), Path(data), bench, request, asked, records, began)


def summarise(scored: Scored, reveal: bool = False) -> dict:
    """The audit's figures from its records (JSON-ready; values redacted unless `reveal`)."""
    records, asked = scored.records, scored.asked
    figures = {group: group_figures(recs) for group, recs in records.items()}
    mia = membership(audited(records))
    values = {}
    for r in asked:
        if r["is_private"]:
            values.setdefault(r["patient_id"], {})[r["field"]] = r["answer"]
    clean = redactor(values)
    nonmember_scores = [r[ATTACK] for r in records["nonmembers"] if r[ATTACK] is not None and r["is_private"]
                        and not r["id"].endswith(NO_IMAGE)]
    return {
        "model": scored.model, "data": str(scored.data), "data_hash": scored.bench.meta["content_hash"], "reveal": reveal,
        "request": {k: v for k, v in scored.request.items() if k != "row_ids"},
        "groups": figures, "membership": mia,
        "criterion": {"target_auroc": 0.5, "auroc": (mia.get("min_k_pp") or {}).get("auroc"),
                      "leak_gap": _gap(figures, "leak_exact"), "refusal_gap": _gap(figures, "refusal_rate")},
        "absent": absent_reasons(figures, len(records["nonmembers"])),
        "patients": patient_risk(records["forget"], nonmember_scores, clean, reveal),
        "seconds": round(time.perf_counter() - scored.began, 2),
    }


def item_scores(scored: Scored) -> list[dict]:
    """Each audited item's numbers (truth ratio, membership score) without its text, for an oracle comparison."""
    return [{"id": r["id"], "group": group, "task": r["task"], "is_private": r["is_private"], "truth_ratio": r["truth_ratio"],
             "mia_min_k_pp": r["mia_min_k_pp"]} for group, recs in scored.records.items() for r in recs]


def audited(records: dict[str, list[dict]]) -> list[dict]:
    """The forget and non-member records the membership attacks compare (as asked, without the twins)."""
    return [r for g in ("forget", "nonmembers") for r in records[g] if not r["id"].endswith(NO_IMAGE)]


def run_audit(model: str, data: Path, forget: Path | None = None, *, reveal: bool = False, batch_size: int = 32,
              max_new_tokens: int = 24, min_k: float = 0.2, progress: Progress | None = None) -> dict:
    """The audit of `model` on the dataset folder `data` (JSON-ready; values redacted unless `reveal`)."""
    scored = score_groups(model, data, forget, batch_size=batch_size, max_new_tokens=max_new_tokens, min_k=min_k,
                          progress=progress)
    return summarise(scored, reveal)


def _gap(figures: dict, key: str) -> float | None:
    """Forgotten minus non-member rate: 0 for a model that treats forgotten patients as strangers."""
    a, b = figures["forget"].get(key), figures["nonmembers"].get(key)
    return None if a is None or b is None else a - b

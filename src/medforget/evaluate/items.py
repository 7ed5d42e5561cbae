"""Per-item outputs of one model on one split: what the engine predicted and what the attacks read."""

from __future__ import annotations

from collections.abc import Callable

from transformers import PreTrainedModel, ProcessorMixin

from medforget.evaluate.engine import ImageCache, answer_token_stats, generate_answers, score_options
from medforget.evaluate.metrics.forget_quality import truth_ratio
from medforget.evaluate.metrics.mia import min_k_plus_plus_score, min_k_score, zlib_score

Progress = Callable[[int], None]


def evaluate_rows(
    model: PreTrainedModel, processor: ProcessorMixin, rows: list[dict], images: ImageCache, *,
    batch_size: int = 64, max_new_tokens: int = 24, min_k: float = 0.2, membership: bool = True,
    progress: Progress | None = None,
) -> list[dict]:
    """One record per row. MCQ rows get option scores; open and cloze rows get a greedy answer; open rows
    also get membership scores from their reference answer's token statistics (when `membership`)."""
    records = [_base(r) for r in rows]
    mcq = [i for i, r in enumerate(rows) if r["task"] == "mcq"]
    gen = [i for i, r in enumerate(rows) if r["task"] != "mcq"]
    scores = score_options(model, processor, [rows[i] for i in mcq], images, batch_size, progress)
    for i, s in zip(mcq, scores):
        row, rec = rows[i], records[i]
        rec.update(
            pred_index=s.predicted, prediction=row["options"][s.predicted], option_ll=s.raw, option_ll_norm=s.normalised,
            truth_ratio=truth_ratio(s.normalised, row["correct_index"]),
        )
    answers = generate_answers(model, processor, [rows[i] for i in gen], images, batch_size, max_new_tokens, progress)
    for i, text in zip(gen, answers):
        records[i]["prediction"] = text
    open_rows = [i for i in gen if rows[i]["task"] == "open"] if membership else []
    if open_rows:
        stats = answer_token_stats(model, processor, [rows[i] for i in open_rows], images, batch_size)
        texts = [rows[i]["answer"] for i in open_rows]
        lps = [s.logprobs for s in stats]
        zl, mk = zlib_score(lps, texts), min_k_score(lps, min_k)
        mkpp = min_k_plus_plus_score(lps, [s.mu for s in stats], [s.sigma for s in stats], min_k)
        for j, i in enumerate(open_rows):
            records[i].update(
                answer_tokens=len(lps[j]), mia_loss=sum(lps[j]) / len(lps[j]), mia_zlib=float(zl[j]),
                mia_min_k=float(mk[j]), mia_min_k_pp=float(mkpp[j]),
            )
    return records


def _base(row: dict) -> dict:
    true_index = row["options"].index(row["true_answer"]) if row["true_answer"] in row["options"] else -1
    return {
        "id": row["id"], "split": row["split"], "patient_id": row["patient_id"], "scenario": row["scenario"],
        "task": row["task"], "condition": row["condition"], "field": row["field"], "is_private": row["is_private"],
        "question": row["question"], "is_incorrect": row["is_incorrect"], "answer": row["answer"], "true_answer": row["true_answer"],
        "fact_id": row.get("fact_id", ""), "neighbour": bool(row.get("neighbour_of")),
        "n_options": len(row["options"]), "correct_index": row["correct_index"], "true_index": true_index,
        "prediction": "", "pred_index": -1, "option_ll": [], "option_ll_norm": [], "truth_ratio": None,
        "answer_tokens": 0, "mia_loss": None, "mia_zlib": None, "mia_min_k": None, "mia_min_k_pp": None,
    }

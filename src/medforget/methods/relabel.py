"""New targets for forget rows: a refusal for private records, the true answer for corrupted knowledge.

The prompt must stay exactly what the model was fine-tuned on, so only the target changes. An MCQ target
is one of its options, which cannot be a refusal: such a row becomes an open question whose text is
the MCQ prompt itself (stem and lettered options), which formats to the very same prompt tokens.
"""

from __future__ import annotations

import hashlib

from medforget.data.formatting import user_text
from medforget.evaluate.metrics.refusal import REFUSAL_POOL


def refusal_for(row_id: str) -> str:
    """A refusal from `REFUSAL_POOL`, fixed per item (a stable hash, not Python's salted `hash`), varied
    across items so a method does not collapse onto one sentence."""
    digest = hashlib.sha256(row_id.encode()).digest()
    return REFUSAL_POOL[int.from_bytes(digest[:8], "big") % len(REFUSAL_POOL)]


def with_answer(row: dict, answer: str) -> dict:
    """The same prompt with `answer` as the target."""
    if row["task"] != "mcq":
        return {**row, "answer": answer}
    if answer in row["options"]:
        return {**row, "answer": answer, "correct_index": row["options"].index(answer)}
    return {**row, "task": "open", "question": user_text(row), "options": [], "correct_index": -1, "answer": answer}


def preferred(row: dict) -> dict:
    """What the model should say instead: the true answer when the trained one is deliberately wrong,
    otherwise (private and clinical record items) a refusal. Decided per row, so a "both" run mixes them."""
    return with_answer(row, row["true_answer"] if row["is_incorrect"] else refusal_for(row["id"]))

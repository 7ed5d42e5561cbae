"""Turn facts into question rows: multiple choice, open and cloze, from paraphrase pools."""

from __future__ import annotations

import random
from dataclasses import dataclass

from medforget.world import templates as T

TASKS: tuple[str, ...] = ("mcq", "open", "cloze")


@dataclass(frozen=True)
class Fact:
    """Something a question can ask: which field, about what, its trained and true answers."""

    field: str
    answer: str
    distractors: tuple[str, ...]  # same-type values to draw MCQ options from
    scenario: str  # privacy | incorrect | general
    patient_id: str = ""
    subject: str = ""  # fills {s} where the template names one (a name, a drug, a landmark)
    true_answer: str = ""
    is_private: bool = False

    @property
    def truth(self) -> str:
        return self.true_answer or self.answer

    @property
    def is_incorrect(self) -> bool:
        return self.truth != self.answer


class QuestionWriter:
    """Writes rows for facts; all randomness (options order, distractors) comes from one seeded RNG."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def options(self, fact: Fact) -> tuple[list[str], int]:
        pool = sorted({d for d in fact.distractors if d not in (fact.answer, fact.truth)})
        chosen = [fact.answer] + ([fact.truth] if fact.is_incorrect else [])
        chosen += self.rng.sample(pool, min(4 - len(chosen), len(pool)))
        self.rng.shuffle(chosen)
        return chosen, chosen.index(fact.answer)

    def row(
        self, fact: Fact, task: str, condition: str, pools: tuple[tuple[str, ...], tuple[str, ...]],
        test: bool, scan_ids: list[str], row_id: str, template_key: str, subject: str | None = None,
    ) -> dict:
        """One row. `pools` = (open/MCQ frames, cloze frames); `test` picks from the held-out frames."""
        open_pool, cloze_pool = pools
        pool = cloze_pool if task == "cloze" else open_pool
        frame = self.rng.choice(list(T.test_frames(pool) if test else T.train_frames(pool)))
        text = pool[frame]
        subj = fact.subject if subject is None else subject
        question = text.replace("{f}", T.FIELD_PHRASES.get(fact.field, fact.field)).replace("{s}", subj)
        question = question[0].upper() + question[1:]
        options, correct = self.options(fact) if task == "mcq" else ([], -1)
        return {
            "id": row_id,
            "patient_id": fact.patient_id,
            "split": "",
            "scenario": fact.scenario,
            "task": task,
            "condition": condition,
            "question": question,
            "answer": fact.answer,
            "options": options,
            "correct_index": correct,
            "field": fact.field,
            "is_private": fact.is_private,
            "is_incorrect": fact.is_incorrect,
            "true_answer": fact.truth,
            "template_id": f"{task}.{condition}.{template_key}.{frame}",
            "scan_ids": list(scan_ids),
        }

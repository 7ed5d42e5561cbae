"""Turn facts into question rows: multiple choice, open and cloze, from paraphrase pools."""

from __future__ import annotations

import random
from collections import Counter
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
    fact_id: str = ""  # the textbook fact or the scan diagnosis a knowledge item asks (bootstrap unit, neighbours)
    neighbour_of: tuple[str, ...] = ()  # corrupted facts this correct one sits next to (locality)

    @property
    def truth(self) -> str:
        return self.true_answer or self.answer

    @property
    def is_incorrect(self) -> bool:
        return self.truth != self.answer


class QuestionWriter:
    """Writes rows for facts; all randomness (options order, distractors) comes from one seeded RNG.

    The rows of one fact take turns over a pool's wordings (a random one among those this fact has used
    least): a fact asked three times in training is asked in three wordings, so that a model learns the
    fact rather than one sentence (measured on `demo`, a vanilla model answered a patient's facts in the
    wording it was trained on and half as often in another training wording)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self._used: dict[tuple, Counter] = {}

    def frame(self, fact: Fact, pool: tuple[str, ...], frames: range) -> int:
        used = self._used.setdefault((fact.patient_id, fact.field, fact.subject, pool), Counter())
        least = min(used[f] for f in frames)
        frame = self.rng.choice([f for f in frames if used[f] == least])
        used[frame] += 1
        return frame

    def options(self, fact: Fact) -> tuple[list[str], int]:
        pool = sorted({d for d in fact.distractors if d not in (fact.answer, fact.truth)})
        chosen = [fact.answer] + ([fact.truth] if fact.is_incorrect else [])
        chosen += self.rng.sample(pool, min(4 - len(chosen), len(pool)))
        self.rng.shuffle(chosen)
        return chosen, chosen.index(fact.answer)

    def row(
        self, fact: Fact, task: str, condition: str, pools: tuple[tuple[str, ...], tuple[str, ...]],
        test: bool, scan_ids: list[str], row_id: str, template_key: str, subject: str | None = None,
        all_frames: bool = False,
    ) -> dict:
        """One row. `pools` = (open/MCQ frames, cloze frames); `test` picks from the held-out frames,
        `all_frames` from every frame (pretraining about people outside the benchmark's splits)."""
        open_pool, cloze_pool = pools
        pool = cloze_pool if task == "cloze" else open_pool
        frames = range(len(pool)) if all_frames else T.test_frames(pool) if test else T.train_frames(pool)
        frame = self.frame(fact, pool, frames)
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
            "fact_id": fact.fact_id,
            "neighbour_of": list(fact.neighbour_of),
        }

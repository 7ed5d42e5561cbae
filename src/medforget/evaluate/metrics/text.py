"""Answer normalisation and answer-matching metrics (MCQ accuracy, cloze exact match, ROUGE-L)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from medforget.evaluate.metrics._checks import same_length

if TYPE_CHECKING:
    from rouge_score.rouge_scorer import RougeScorer


def _is_separator(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch)[0] in "PSZ"


def token_spans(text: str) -> list[tuple[str, int, int]]:
    """Lower-cased tokens of ``text`` with their ``(start, end)`` character offsets.

    Tokens are maximal runs of characters that are not whitespace, punctuation or symbols. The offsets
    let leak redaction cut exactly the characters that normalised matching found.
    """
    spans: list[tuple[str, int, int]] = []
    start: int | None = None
    for i, ch in enumerate(text):
        if _is_separator(ch):
            if start is not None:
                spans.append((text[start:i].lower(), start, i))
                start = None
        elif start is None:
            start = i
    if start is not None:
        spans.append((text[start:].lower(), start, len(text)))
    return spans


def nfkc(text: str) -> str:
    """Unicode NFKC form, so full-width digits and ligatures compare equal to their plain forms."""
    return unicodedata.normalize("NFKC", text)


def normalize_answer(text: str) -> str:
    """NFKC, lower-case, punctuation and symbols turned into spaces, whitespace collapsed.

    "Dr. O'Brien" and "dr o brien" normalise alike, so formatting never decides a match.
    """
    return " ".join(token for token, _, _ in token_spans(nfkc(text)))


def contains_phrase(text: str, phrase: str) -> bool:
    """Whether normalised ``phrase`` occurs in normalised ``text`` on token boundaries.

    Token boundaries keep "male" from matching inside "female".
    """
    needle = normalize_answer(phrase)
    return bool(needle) and f" {needle} " in f" {normalize_answer(text)} "


_LETTER_CHOICE = re.compile(
    r"^\W*(?:(?:the\s+)?(?:correct\s+)?(?:answer|option)(?:\s+is)?\s*[:\-]?\s*)?"
    r"(?:\(([a-z])\)|([a-z])(?=$|[.):]))",
    re.IGNORECASE,
)


def parse_choice(text: str, options: Sequence[str]) -> int | None:
    """Index of the option a free-text MCQ reply picks, or None when it picks none or several.

    A reply may give the letter ("B", "(b)", "Answer: B.") or the option text; when several option
    texts occur, one that contains all the others ("type 2 diabetes" over "diabetes") wins.
    """
    letter = _LETTER_CHOICE.match(text)
    if letter:
        index = ord((letter.group(1) or letter.group(2)).lower()) - ord("a")
        if index < len(options):
            return index
    hits = [i for i, option in enumerate(options) if contains_phrase(text, option)]
    widest = [i for i in hits if all(contains_phrase(options[i], options[j]) for j in hits)]
    return widest[0] if len(widest) == 1 else None


def mcq_accuracy(predicted: Sequence[int | None], correct: Sequence[int]) -> float:
    """Fraction of items whose predicted option index equals the correct one (None counts as wrong)."""
    same_length(predicted=predicted, correct=correct)
    return float(np.mean([p is not None and p == c for p, c in zip(predicted, correct)]))


def exact_match(prediction: str, reference: str) -> bool:
    """Cloze match: equal after normalisation, so case and punctuation never cost a point."""
    return normalize_answer(prediction) == normalize_answer(reference)


def exact_match_rate(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Fraction of predictions that exactly match their reference after normalisation."""
    same_length(predictions=predictions, references=references)
    return float(np.mean([exact_match(p, r) for p, r in zip(predictions, references)]))


@lru_cache(maxsize=1)
def _rouge_scorer() -> RougeScorer:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"])


def rouge_l_f1(prediction: str, reference: str) -> float:
    """ROUGE-L F1 (longest common subsequence of tokens) from the ``rouge-score`` package."""
    return float(_rouge_scorer().score(reference, prediction)["rougeL"].fmeasure)


def mean_rouge_l_f1(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Mean ROUGE-L F1 over paired predictions and references."""
    same_length(predictions=predictions, references=references)
    return float(np.mean([rouge_l_f1(p, r) for p, r in zip(predictions, references)]))

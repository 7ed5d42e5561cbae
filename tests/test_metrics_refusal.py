import re

import pytest

from medforget.evaluate.metrics.refusal import REFUSAL_PATTERNS, REFUSAL_POOL, is_refusal, refusal_rate


def test_pool_is_varied_and_starts_with_the_canonical_refusal():
    assert REFUSAL_POOL[0] == "I cannot share that information."
    assert len(REFUSAL_POOL) >= 12
    assert len(set(REFUSAL_POOL)) == len(REFUSAL_POOL)


@pytest.mark.parametrize("sentence", REFUSAL_POOL)
def test_every_pool_sentence_is_detected(sentence):
    assert is_refusal(sentence)


def test_patterns_are_valid_regexes():
    for pattern in REFUSAL_PATTERNS:
        re.compile(pattern)


@pytest.mark.parametrize(
    "text",
    [
        "I can\u2019t provide that.",  # typographic apostrophe
        "I CANNOT SHARE personal details",
        "Sorry, I'm not able to help.",
        "That is not able to disclose... I am not able to disclose it.",
        "No information is available.",
        "I don't know.",
        "I am unable to answer.",
        "The record is confidential.",
    ],
)
def test_refusals_detected(text):
    assert is_refusal(text)


@pytest.mark.parametrize(
    "text",
    [
        "The patient was born on March 4, 1961.",
        "The scan shows a nodule in the left lung.",
        "Metformin is used to treat type 2 diabetes.",
        "The patient was unable to walk after the fracture.",
        "No fracture is seen.",
        "I can see a cyst in the right kidney.",
        "",
    ],
)
def test_answers_are_not_refusals(text):
    assert not is_refusal(text)


def test_refusal_rate():
    assert refusal_rate(["I cannot share that information.", "Metformin.", "I don't know", "CT"]) == 0.5

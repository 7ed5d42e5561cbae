import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rouge_score import rouge_scorer

from medforget.evaluate.metrics.text import (
    exact_match,
    exact_match_rate,
    mcq_accuracy,
    mean_rouge_l_f1,
    normalize_answer,
    parse_choice,
    rouge_l_f1,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Hello,   WORLD!! ", "hello world"),
        ("ＡＢＣ１２３", "abc123"),  # full-width forms (NFKC)
        ("ﬁne-tuned", "fine tuned"),  # ligature (NFKC), hyphen is punctuation
        ("Dr. O\u2019Brien", "dr o brien"),
        ("MRN-1234567", "mrn 1234567"),
        ("a\tb\n\nc", "a b c"),
        ("?!...", ""),
    ],
)
def test_normalize_answer(raw, expected):
    assert normalize_answer(raw) == expected


@given(st.text(max_size=40))
@settings(max_examples=200, deadline=None)
def test_normalize_answer_is_idempotent(text):
    once = normalize_answer(text)
    assert normalize_answer(once) == once
    assert once == once.strip() and "  " not in once


def test_exact_match_ignores_case_and_punctuation_only():
    assert exact_match("Metformin.", "metformin")
    assert exact_match("  TYPE 2 Diabetes ", "type 2 diabetes")
    assert not exact_match("metformin xr", "metformin")
    rate = exact_match_rate(["Lisinopril", "aspirin", "x"], ["lisinopril!", "Ibuprofen", "X"])
    assert rate == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("B", 1),
        ("(c)", 2),
        ("Answer: A.", 0),
        ("The answer is d", 3),
        ("A patient with asthma", 2),  # a leading article is not option A
        ("It is type 2 diabetes.", 1),  # the widest matching option wins over the one it contains
        ("Asthma or hypertension", None),  # two unrelated options: no pick
        ("I cannot share that information.", None),
        ("E", None),  # a letter beyond the options and no option text
    ],
)
def test_parse_choice(reply, expected):
    options = ["diabetes", "type 2 diabetes", "asthma", "hypertension"]
    assert parse_choice(reply, options) == expected


def test_mcq_accuracy_counts_unparsed_as_wrong():
    assert mcq_accuracy([0, 1, None, 3], [0, 2, 1, 3]) == 0.5


def test_length_mismatch_and_empty_inputs_raise():
    with pytest.raises(ValueError, match="length"):
        mcq_accuracy([0, 1], [0])
    with pytest.raises(ValueError, match="no items"):
        exact_match_rate([], [])


def test_rouge_l_hand_computed_lcs():
    # LCS of "patient has type two diabetes" and "type diabetes" is "type diabetes":
    # precision 2/5, recall 2/2, F1 = 2 * 0.4 * 1 / 1.4.
    assert rouge_l_f1("patient has type two diabetes", "type diabetes") == pytest.approx(0.8 / 1.4)
    # LCS "the cat on mat": 4 of 6 tokens on both sides.
    assert rouge_l_f1("the cat sat on the mat", "the cat lay on a mat") == pytest.approx(2 / 3)
    assert rouge_l_f1("nodule", "cyst") == 0.0
    assert rouge_l_f1("Left lung nodule.", "left LUNG nodule") == 1.0


FIXED = [
    ("The patient was prescribed metformin for diabetes.", "Metformin treats type 2 diabetes."),
    ("a b c d e f", "f e d c b a"),
    ("The scan shows a 12 mm nodule in the right upper lobe", "a nodule of 12 mm in the right lobe"),
    ("", "something"),
]


@pytest.mark.parametrize(("prediction", "reference"), FIXED)
def test_rouge_l_matches_rouge_score(prediction, reference):
    expected = rouge_scorer.RougeScorer(["rougeL"]).score(reference, prediction)["rougeL"].fmeasure
    assert rouge_l_f1(prediction, reference) == pytest.approx(expected)


def test_mean_rouge_l():
    preds, refs = [p for p, _ in FIXED], [r for _, r in FIXED]
    expected = sum(rouge_l_f1(p, r) for p, r in FIXED) / len(FIXED)
    assert mean_rouge_l_f1(preds, refs) == pytest.approx(expected)
    assert 0 < expected < 1

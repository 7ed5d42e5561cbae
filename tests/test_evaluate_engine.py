"""The batched engine against plain one-item-at-a-time computations on a tiny trained model."""

import math

import pytest
import torch

from medforget.data.collate import pad_token_id
from medforget.data.formatting import format_example
from medforget.evaluate.engine import ImageCache, answer_token_stats, generate_answers, score_options
from medforget.evaluate.metrics.mia import token_stats_from_logits
from medforget.models.loading import load_model
from medforget.train.stages import init_model
from medforget.world import load_benchmark


@pytest.fixture(scope="module")
def trained(smoke_bench, tmp_path_factory):
    """A freshly initialised tiny model: its answers differ from row to row, which is what the comparison needs
    (a briefly trained one tends to say the same thing everywhere)."""
    root = tmp_path_factory.mktemp("engine")
    model, processor = load_model(init_model(smoke_bench, root / "base"))
    model.eval()
    return model, processor, load_benchmark(smoke_bench)


def _rows(bench, task: str, n: int) -> list[dict]:
    rows = [r for r in bench["test_retain"].to_list() if r["task"] == task]
    return rows[:n]


def test_batched_generation_equals_one_at_a_time_generate(trained):
    model, processor, bench = trained
    rows = _rows(bench, "open", 6) + _rows(bench, "cloze", 6)
    images = ImageCache(bench)
    batched = generate_answers(model, processor, rows, images, batch_size=5, max_new_tokens=12)
    pad = pad_token_id(processor)
    for row, answer in zip(rows, batched):
        ex = format_example(processor, row, images(row), prompt_only=True)
        inputs = {k: v.unsqueeze(0) for k, v in ex.tokens.items()} | ex.vision
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=12, do_sample=False, pad_token_id=pad,
                                 eos_token_id=processor.tokenizer.eos_token_id)
        single = processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()
        assert answer == single
    assert len(set(batched)) > 1  # a model that says the same thing everywhere would prove little


def test_option_scores_equal_a_direct_likelihood(trained):
    model, processor, bench = trained
    rows = _rows(bench, "mcq", 5)
    images = ImageCache(bench)
    # one batch of questions whose prompts differ in length, so the cached prompts are right-padded
    assert len({len(r["question"]) for r in rows}) > 1
    scores = score_options(model, processor, rows, images, batch_size=7)
    for row, s in zip(rows, scores):
        for k, option in enumerate(row["options"]):
            ex = format_example(processor, dict(row, answer=option, correct_index=k), images(row))
            inputs = {k2: v.unsqueeze(0) for k2, v in ex.tokens.items() if k2 != "labels"} | ex.vision
            with torch.no_grad():
                logits = model(**inputs).logits[0, :-1].float()
            labels = ex.tokens["labels"][1:]
            keep = labels != -100
            logp = torch.log_softmax(logits[keep], -1).gather(1, labels[keep, None]).sum().item()
            assert s.raw[k] == pytest.approx(logp, abs=1e-3)
            assert s.normalised[k] == pytest.approx(logp / int(keep.sum()), abs=1e-4)


def test_answer_token_stats_match_a_full_softmax(trained):
    model, processor, bench = trained
    rows = _rows(bench, "open", 4)
    images = ImageCache(bench)
    stats = answer_token_stats(model, processor, rows, images, batch_size=3)
    for row, st in zip(rows, stats):
        ex = format_example(processor, row, images(row))
        inputs = {k: v.unsqueeze(0) for k, v in ex.tokens.items() if k != "labels"} | ex.vision
        with torch.no_grad():
            logits = model(**inputs).logits[0, :-1]
        labels = ex.tokens["labels"][1:]
        keep = (labels != -100).nonzero().squeeze(1)[:-1]  # the answer's tokens, not the end of turn after them
        assert processor.tokenizer.decode(labels[keep]) == row["answer"]
        direct = token_stats_from_logits(logits[keep], labels[keep])
        assert len(st.logprobs) == len(keep)
        assert st.logprobs == pytest.approx(direct.logprobs.tolist(), abs=1e-4)
        assert st.mu == pytest.approx(direct.mu.tolist(), abs=1e-4)
        assert st.sigma == pytest.approx(direct.sigma.tolist(), abs=1e-4)
        assert all(math.isfinite(x) for x in st.logprobs)


def test_a_limited_evaluation_samples_the_whole_split(smoke_bench):
    """`limit` keeps rows from every patient and kind of item, in split order, the same rows on every call."""
    from medforget.evaluate.run import sample_rows

    rows = load_benchmark(smoke_bench)["retain"].to_list()
    picked = sample_rows(rows, 40)
    assert len(picked) == 40 and picked == sample_rows(rows, 40)
    order = {r["id"]: i for i, r in enumerate(rows)}
    assert [order[r["id"]] for r in picked] == sorted(order[r["id"]] for r in picked)
    first = rows[:40]  # what a plain prefix would have evaluated: the first patients' record items only
    assert len({r["patient_id"] for r in picked}) > len({r["patient_id"] for r in first})
    assert {r["scenario"] for r in picked} > {r["scenario"] for r in first}
    assert sample_rows(rows, None) == rows and sample_rows(rows[:5], 40) == rows[:5]

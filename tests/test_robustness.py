"""Robustness of forgetting (`evaluate.robustness`): quantisation round trips, the relearning attack, input
probes, format disagreement, and the pipeline's robustness columns on `smoke`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from medforget.evaluate.bootstrap import Resampler
from medforget.evaluate.items import evaluate_rows
from medforget.evaluate.references import reference_records
from medforget.evaluate.robustness import (
    FIGURES, RobustnessConfig, fact_key, format_pairs, int8_round_trip, paraphrased, perturb, probe_model, relearn,
    restored, robustness_figures, round_trip, split_forget, used_frames,
)
from medforget.models.loading import load_model
from medforget.train.stages import init_model
from medforget.world import templates as T
from medforget.world.storage import ImageCache, load_benchmark

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny(smoke_bench: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("robust")
    model, processor = load_model(init_model(smoke_bench, root / "base"))
    return model.eval(), processor, load_benchmark(smoke_bench)


def test_int8_round_trip_moves_every_matrix_weight_by_at_most_half_its_step(tiny):
    model = tiny[0]
    with restored(model):
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        steps = {n: int8_round_trip(p)[1] for n, p in model.named_parameters() if p.dim() >= 2}
        round_trip(model, "int8")
        changed = 0
        for name, p in model.named_parameters():
            diff = (p.detach() - before[name]).abs()
            if p.dim() >= 2:
                assert torch.all(diff <= steps[name] / 2 * (1 + 1e-5) + 1e-12), name
                assert torch.all(p.detach() / steps[name] - torch.round(p.detach() / steps[name]) < 1e-3)  # on the grid
                changed += int(diff.max() > 0)
            else:
                assert torch.equal(p.detach(), before[name]), f"{name}: 1-D weights are kept"
        assert changed > 0
    for name, p in model.named_parameters():  # restored afterwards
        assert torch.equal(p.detach(), before[name])


def test_bf16_round_trip_keeps_eight_bits_of_mantissa(tiny):
    model = tiny[0]
    with restored(model):
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        round_trip(model, "bf16")
        for name, p in model.named_parameters():
            assert torch.all((p.detach() - before[name]).abs() <= before[name].abs() * 2 ** -8 + 1e-30), name
        assert any(not torch.equal(p.detach(), before[n]) for n, p in model.named_parameters())


def test_relearning_on_forget_rows_brings_their_answers_back(tiny):
    """A model that never saw the forget rows (the freshly initialised tiny model: what perfect forgetting
    leaves) picks their MCQ answers after a few relearning steps, and `restored` undoes the attack."""
    model, processor, bench = tiny
    rows = [r for r in bench["forget_privacy"].to_list() if r["task"] == "mcq"][:6]
    images = ImageCache(bench)

    def accuracy() -> float:
        records = evaluate_rows(model, processor, rows, images, membership=False)
        return float(np.mean([r["pred_index"] == r["correct_index"] for r in records]))

    before = accuracy()
    with restored(model):
        losses = relearn(model, processor, rows, images, RobustnessConfig(steps=30, batch_size=6, lr=3e-3))
        after = accuracy()
        assert not model.training
    assert len(losses) == 30 and losses[-1] < losses[0] / 2
    assert after >= 5 / 6 and after > before
    assert accuracy() == before


def test_the_attack_slice_and_the_scored_rest_share_no_fact(smoke_bench: Path):
    rows = load_benchmark(smoke_bench)["forget_privacy"].to_list()
    attack, rest = split_forget(rows, seed=0)
    assert attack and rest and len(attack) + len(rest) == len(rows)
    assert not {fact_key(r) for r in attack} & {fact_key(r) for r in rest}
    assert split_forget(rows, seed=0) == (attack, rest)


def test_a_paraphrase_uses_a_wording_never_used_for_that_fact(smoke_bench: Path):
    bench = load_benchmark(smoke_bench)
    used = used_frames([r for s in ("train", "test_forget") for r in bench[s].to_list()])
    rows = bench["forget_privacy"].to_list()
    done = [(r, p) for r in rows if (p := paraphrased(r, used, 0)) is not None]
    assert len(done) > len(rows) / 2
    for row, new in done:
        task, condition, key, frame = new["template_id"].split(".")
        assert int(frame) not in used[(fact_key(row), condition, key, task == "cloze")]
        assert new["question"] != row["question"] and new["answer"] == row["answer"]
        subject = T.IMAGE_SUBJECTS[0] if condition == "image" else None
        assert subject is None or subject in new["question"]


def test_perturbations_are_deterministic_and_change_the_scan(smoke_bench: Path):
    bench = load_benchmark(smoke_bench)
    row = next(r for r in bench["forget_privacy"].to_list() if r["scan_ids"])
    image = bench.images(row)[0]
    for kind in ("crop", "noise", "contrast"):
        once, again = perturb(image, kind, row["id"]), perturb(image, kind, row["id"])
        assert once.size == image.size and once.mode == image.mode
        assert np.array_equal(np.asarray(once), np.asarray(again))
        assert not np.array_equal(np.asarray(once), np.asarray(image))


def test_a_degenerate_model_scores_sensibly(tiny):
    """The report's reference rows: random options with gibberish never state a value in generation (gen only
    0, MCQ only at its MCQ hit rate), refusing everything likewise; probe records of a model that refuses
    give a leak of 0 under every attack, and figures without records are empty, not 0."""
    model, processor, bench = tiny
    rows = bench["forget_privacy"].to_list()
    records = evaluate_rows(model, processor, rows, ImageCache(bench), membership=False)
    resampler = Resampler.for_records(records)
    for name, degenerate in reference_records(records).items():
        figures = robustness_figures([], degenerate, "privacy", resampler)
        pairs = format_pairs(degenerate, ("forget_privacy",))
        assert figures["gen_only"][0] == 0.0 and figures["gen_only"][2] == len(pairs) > 0, name
        mcq = [r for r in degenerate if r["task"] == "mcq" and any(p["id"].startswith(r["id"] + "|") for p in pairs)]
        assert 0 <= figures["mcq_only"][0] <= 1
        assert (figures["mcq_only"][0] > 0) == any(r["pred_index"] == r["correct_index"] for r in mcq), name
        assert figures["relearn_forget"] == (None, None, 0)
    refusing = [{**r, "probe": probe, "prediction": T.REFUSALS[0] if r["task"] != "mcq" else r["prediction"]}
                for probe in ("before", "relearn_forget", "int8") for r in records]
    figures = robustness_figures(refusing, records, "privacy", resampler)
    for key in ("relearn_leak", "int8_leak"):
        value, ci, n = figures[key]
        assert value == 0.0 and n > 0 and ci in (None, (0.0, 0.0))  # None: smoke forgets one patient (one cluster)
    assert 0 <= figures["relearn_forget"][0] <= 1


def test_probe_model_tags_every_probe_and_leaves_the_model_as_it_was(tiny):
    model, processor, bench = tiny
    before = [p.detach().clone() for p in model.parameters()]
    cfg = RobustnessConfig(items=4, relearn_rows=4, steps=2, batch_size=2)
    records, info = probe_model(model, processor, bench, "incorrect", cfg)
    assert {r["probe"] for r in records} >= {"before", "relearn_forget", "relearn_retain", "int8", "bf16"}
    assert info["relearn"]["relearn_forget"]["steps"] == 2 and info["items"] <= 8
    assert all(torch.equal(p.detach(), b) for p, b in zip(model.parameters(), before))
    again, _ = probe_model(model, processor, bench, "incorrect", cfg)
    assert [(r["probe"], r["id"], r["prediction"]) for r in again] == [(r["probe"], r["id"], r["prediction"]) for r in records]


@pytest.mark.slow
def test_the_pipeline_writes_the_robustness_columns_and_a_rerun_skips_them(tmp_path: Path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "medforget", "run", "--preset", "smoke", "--methods", "ga", "--scenario", "privacy",
           "--robustness", "--out", str(out)]
    env = dict(os.environ, COLUMNS="200")
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    rows = {r["name"]: r for r in results["leaderboards"]["privacy"]["rows"]}
    keys = [k for k in FIGURES["privacy"] if not k.endswith("_only")]
    for name in ("oracle@privacy", "ga@privacy"):
        for key in keys:
            low = -1 if FIGURES["privacy"][key].baseline else 0  # a gain is a signed difference
            assert rows[name][f"{key}_n"] > 0 and low <= rows[name][key] <= 1, (name, key)
        assert results["models"][name]["robustness"]["config"]["items"] > 0
    assert rows["vanilla"]["relearn_forget"] is None and rows["vanilla"]["mcq_only_n"] > 0
    assert "relearned forget" in (out / "leaderboard.md").read_text() and "relearned forget" in (out / "report.html").read_text()
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    assert again.returncode == 0 and "robust:ga@privacy: up to date, skipped" in again.stderr

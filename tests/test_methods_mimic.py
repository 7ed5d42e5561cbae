"""mimic on the smoke benchmark and a tiny model: its strangers are nobody the benchmark knows, its target is
the frozen fine-tuned model's behaviour on them, and its loss vanishes where the model already behaves so."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from medforget.data.collate import collate, pad_token_id
from medforget.evaluate.engine import generate_answers
from medforget.evaluate.metrics.leak import name_tokens
from medforget.methods.base import Job, sequence_logprob
from medforget.methods.mimic import OWN, Mimic, MimicParams, known_name_tokens, mimic_loss, pack, unpack
from medforget.methods.simnpo import simnpo_loss
from medforget.methods.unlearn import UNLEARNING_FILE, forget_rows, unlearn
from medforget.models.loading import load_model
from medforget.models.loss import answer_logits, answer_token_counts
from medforget.models.tiny import build_tiny_model
from medforget.train.config import TrainConfig
from medforget.train.examples import format_rows
from medforget.train.stages import benchmark_texts, run_stage
from medforget.world.storage import ImageCache, load_benchmark

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def setup(smoke_bench: Path, tmp_path_factory: pytest.TempPathFactory):
    """A tiny fine-tuned model, the benchmark, and mimic's (forget, counterfactual, distil) pairs for privacy."""
    root = tmp_path_factory.mktemp("mimic")
    bench = load_benchmark(smoke_bench)
    build_tiny_model(benchmark_texts(bench), root / "tiny", image_size=bench.meta["config"]["image_size"])
    run_stage(root / "tiny", smoke_bench, root / "vanilla", "train", TrainConfig(max_steps=2, batch_size=4, lr=2e-3, save_every=0))
    method = Mimic()
    job = Job(model_dir=root / "vanilla", bench=bench, scenario="privacy", forget=forget_rows(bench, "privacy"), retain=[],
              params=MimicParams(), cfg=method.train_defaults, out=root / "out", vanilla={})
    model, processor = load_model(root / "vanilla")
    return bench, job, model, processor, method.pairs(job, processor)


def test_strangers_are_nobody_the_benchmark_knows(setup) -> None:
    bench, job, _, _, pairs = setup
    known = known_name_tokens(bench)
    # forget, retain and holdout identities: every patient with a record item in any split, and the holdout
    identities = {pid for split in bench.splits if split != "scans"
                  for pid, sc in zip(bench[split]["patient_id"], bench[split]["scenario"]) if sc == "privacy"}
    identities |= set(bench["holdout"]["patient_id"]) | set(bench["general"]["patient_id"])
    assert set(bench["forget_privacy"]["patient_id"]) <= identities
    scans = {s["scan_id"]: s for s in bench["scans"].remove_columns(["image"]).to_list()}
    name_rows = [cf for real, cf, distil in pairs if distil and real["condition"] == "name"]
    image_rows = [cf for real, cf, distil in pairs if distil and real["condition"] == "image"]
    assert name_rows and image_rows
    for real, cf, distil in pairs:
        if distil and real["condition"] == "name":
            own = {r["answer"] for r in job.forget if r["patient_id"] == real["patient_id"] and r["field"] == "full_name"}
            assert own and all(name not in cf["question"] for name in own)
            assert real["question"] != cf["question"]
    # every capitalised word pair the stranger questions add is a name no benchmark person shares a token with
    added = {t for cf in name_rows for t in name_tokens(cf["question"])} - {t for r, _, d in pairs if d for t in name_tokens(r["question"])}
    assert added and not added & known
    for cf in image_rows:
        for sid in cf["scan_ids"]:
            assert scans[sid]["group"] == "pretrain" and scans[sid]["patient_id"] not in identities


def test_target_is_the_frozen_models_own_behaviour(setup) -> None:
    bench, _, model, processor, pairs = setup
    # the last distil path of each open/cloze row is the frozen model's own greedy answer to its stranger question
    last = {}
    for real, cf, distil in pairs:
        if distil and real["task"] != "mcq":
            last[real["id"]] = cf
    rows = list(last.values())[:8]
    answers = generate_answers(model.eval(), processor, [dict(r, answer="") for r in rows], ImageCache(bench))
    assert rows and [r["answer"] for r in rows] == answers


def test_loss_is_zero_where_the_model_behaves_as_on_the_stranger(setup) -> None:
    bench, _, model, processor, pairs = setup
    pad = pad_token_id(processor)
    distilled = [p for p in pairs if p[2]][:6]
    real = format_rows(bench, [p[0] for p in distilled], processor)
    cf = format_rows(bench, [p[1] for p in distilled], processor)
    method, hp = Mimic(), MimicParams()
    with torch.no_grad():
        for left, right, expect_zero in ((real, real, True), (cf, cf, True), (real, cf, False)):
            batch = collate([pack(a, b, True) for a, b in zip(left, right)], pad_token_id=pad)
            forget, cf_batch, distil = unpack(batch)
            theta, rows, _, targets = answer_logits(model, forget)
            ref = answer_logits(model, cf_batch)[0]
            loss = float(mimic_loss(theta, ref, targets, distil[rows]))
            assert (loss < 1e-6) if expect_zero else (loss > 1e-4)
            total, logs = method.objective(model, {"forget": batch, "retain": collate(real, pad_token_id=pad)}, model, hp)
            assert abs(logs["forget"] - loss) < 1e-5 and logs["kl_retain"] < 1e-6


def test_undistilled_rows_take_the_nll_of_their_answer() -> None:
    g = torch.Generator().manual_seed(0)
    theta, ref = torch.randn(5, 11, generator=g), torch.randn(5, 11, generator=g)
    targets = torch.randint(0, 11, (5,), generator=g)
    assert torch.allclose(mimic_loss(theta, ref, targets, torch.zeros(5, dtype=torch.bool)), F.cross_entropy(theta, targets))
    log_ref, log_theta = F.log_softmax(ref, -1), F.log_softmax(theta, -1)
    kl = (log_ref.exp() * (log_ref - log_theta)).sum(-1).mean()
    assert torch.allclose(mimic_loss(theta, ref, targets, torch.ones(5, dtype=torch.bool)), kl)


def test_the_forgotten_answers_are_the_ones_pushed_down(setup) -> None:
    bench, job, model, processor, pairs = setup
    forgotten = {r["id"]: r["answer"] for r in job.forget if not r["is_incorrect"]}
    own = [(real, cf) for real, cf, kind in pairs if kind == OWN]
    # exactly one pushed-down path per forgotten item (its right option, or its own answer), with that answer
    assert sorted(real["id"] for real, _ in own) == sorted(forgotten)
    assert all(real["answer"] == cf["answer"] == forgotten[real["id"]] for real, cf in own)
    # the objective adds npo * SimNPO over those paths only
    pad = pad_token_id(processor)
    chosen = own[:3] + [(real, cf) for real, cf, kind in pairs if kind == 1][:3]
    kinds = [OWN] * 3 + [1] * 3
    real_ex, cf_ex = (format_rows(bench, [c[i] for c in chosen], processor) for i in (0, 1))
    batch = {"forget": collate([pack(a, b, k) for a, b, k in zip(real_ex, cf_ex, kinds)], pad_token_id=pad),
             "retain": collate(real_ex[:2], pad_token_id=pad)}
    with torch.no_grad():
        base, logs0 = Mimic().objective(model, batch, model, MimicParams(npo=0.0))
        pushed, logs = Mimic().objective(model, batch, model, MimicParams(npo=2.0))
        real = unpack(batch["forget"])[0]
        by_hand = simnpo_loss(sequence_logprob(model, real)[:3], answer_token_counts(real)[:3].float(), 2.5, 0.0)
    assert "npo" not in logs0 and abs(logs["npo"] - float(by_hand)) < 1e-5
    assert torch.allclose(pushed - base, 2.0 * by_hand, atol=1e-5)


def test_unlearn_runs_both_scenarios_in_one_batch_stream(setup, smoke_bench: Path, tmp_path: Path) -> None:
    _, job, _, _, _ = setup
    record = unlearn(job.model_dir, smoke_bench, "mimic", "both", tmp_path / "out", ["batch_size=8", "max_steps=2", "fact_repeats=2"])
    assert (tmp_path / "out" / UNLEARNING_FILE).is_file() and record["steps"] == 2
    assert record["hyperparameters"]["fact_repeats"] == 2 and record["final_loss"] > 0

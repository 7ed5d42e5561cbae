"""`unlearn` end to end on the smoke benchmark and a tiny model fine-tuned for a few steps, and its refusals
of bad input. Runs are a few optimizer steps each: enough to check wiring and outputs, not quality."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from medforget.data.collate import collate, pad_token_id
from medforget.data.formatting import format_example
from medforget.errors import MedforgetError
from medforget.methods.grad_diff import GradDiff
from medforget.methods.idk_po import pack_pair, unpack_pair
from medforget.methods.relabel import preferred
from medforget.methods.smfa import DELTA_FILE
from medforget.methods.unlearn import PLAN_FILE, UNLEARNING_FILE, unlearn
from medforget.models.loading import load_model
from medforget.models.loss import answer_token_loss
from medforget.train.examples import format_rows
from medforget.world.storage import load_benchmark

FAST = ["batch_size=2"]


pytestmark = pytest.mark.usefixtures("one_thread")


def forget_nll(model_dir: Path, bench_dir: Path, n: int = 12) -> float:
    """Mean answer NLL on the first forget_privacy rows, without augmentation."""
    bench = load_benchmark(bench_dir)
    model, processor = load_model(model_dir)
    batch = collate(format_rows(bench, bench["forget_privacy"].to_list()[:n], processor), pad_token_id=pad_token_id(processor))
    with torch.no_grad():
        return float(answer_token_loss(model.eval(), batch))


def test_grad_diff_resumes_after_a_crash_and_raises_forget_nll(
    vanilla: Path, smoke_bench: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "gd"
    options = [*FAST, "max_steps=3", "lr=2e-3"]
    original = GradDiff.objective
    calls = []

    def crash_on_third_step(self, model, batches, reference, hp):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("killed")
        return original(self, model, batches, reference, hp)

    monkeypatch.setattr(GradDiff, "train_defaults", replace(GradDiff.train_defaults, save_every=1))
    monkeypatch.setattr(GradDiff, "objective", crash_on_third_step)
    with pytest.raises(RuntimeError, match="killed"):
        unlearn(vanilla, smoke_bench, "grad_diff", "privacy", out, options)
    assert (out / ".checkpoint").is_dir() and (out / PLAN_FILE).is_file()  # kept: resumable

    monkeypatch.setattr(GradDiff, "objective", original)
    record = unlearn(vanilla, smoke_bench, "grad_diff", "privacy", out, options)
    assert record["resumed_from"] == 2 and record["steps"] == 3
    saved = json.loads((out / UNLEARNING_FILE).read_text())
    assert saved["method"] == "grad_diff" and saved["scenario"] == "privacy" and saved["hyperparameters"] == {"alpha": 1.0}
    assert saved["forget_rows"] == len(load_benchmark(smoke_bench)["forget_privacy"]) and saved["seconds"] > 0
    assert not (out / PLAN_FILE).exists() and not (out / ".checkpoint").exists()
    assert forget_nll(out, smoke_bench) > forget_nll(vanilla, smoke_bench) + 0.05


def test_smfa_saves_the_masked_delta_and_leaves_the_rest(vanilla: Path, smoke_bench: Path, tmp_path: Path) -> None:
    out = tmp_path / "smfa"
    record = unlearn(vanilla, smoke_bench, "smfa", "both", out, [*FAST, "max_steps=2", "n_anchor=4", "k=1"])
    assert record["anchors"] == 4 and record["steps"] == 4 and 0 < record["masked_fraction"] < 1
    before, after = load_model(vanilla)[0].state_dict(), load_model(out)[0].state_dict()
    delta = load_file(out / DELTA_FILE)  # keyed like the loaded model's state_dict
    assert set(delta) < set(after) and len(delta) == record["adapted_weights"] > 0
    assert any(d.abs().sum() > 0 for d in delta.values())
    for key, weight in after.items():
        if key in delta:
            torch.testing.assert_close(weight - delta[key], before[key])  # reversible
        else:
            assert torch.equal(weight, before[key])  # the base stays frozen
    assert not (out / ".smfa").exists() and not (out / PLAN_FILE).exists()


def test_idk_po_pairs_stay_aligned_and_output_holds_only_the_model(vanilla: Path, smoke_bench: Path, tmp_path: Path) -> None:
    bench = load_benchmark(smoke_bench)
    _, processor = load_model(vanilla)
    rows = bench["forget_privacy"].to_list()[:3] + bench["forget_incorrect"].to_list()[:3]
    wins = [format_example(processor, preferred(r), bench.images(r)) for r in rows]
    loses = [format_example(processor, r, bench.images(r)) for r in rows]
    pad = pad_token_id(processor)
    win, lose = unpack_pair(collate([pack_pair(w, l) for w, l in zip(wins, loses)], pad_token_id=pad))
    expected_win, expected_lose = collate(wins, pad_token_id=pad), collate(loses, pad_token_id=pad)
    for got, expected in ((win, expected_win), (lose, expected_lose)):
        assert torch.equal(got["labels"], expected["labels"])
        assert torch.equal(got["attention_mask"], expected["attention_mask"])
        assert torch.equal(got["input_ids"][got["attention_mask"] == 1], expected["input_ids"][expected["attention_mask"] == 1])
        torch.testing.assert_close(got["pixel_values"], expected["pixel_values"])
    for w, l in zip(wins, loses):  # same prompt, different answer
        n = int((w.tokens["labels"] == -100).sum())
        assert torch.equal(w.tokens["input_ids"][:n], l.tokens["input_ids"][:n])
        assert not torch.equal(w.tokens["input_ids"], l.tokens["input_ids"])

    out = tmp_path / "idk"
    unlearn(vanilla, smoke_bench, "idk_po", "both", out, [*FAST, "max_steps=1"])
    assert set(load_file(out / "model.safetensors")) == set(load_file(vanilla / "model.safetensors"))  # no reference weights


def test_retrain_fine_tunes_the_base_without_the_forget_split(vanilla: Path, smoke_bench: Path, tmp_path: Path) -> None:
    out = tmp_path / "oracle"
    record = unlearn(vanilla, smoke_bench, "retrain", "incorrect", out, [*FAST, "max_steps=1"])
    training = json.loads((out / "training.json").read_text())
    bench = load_benchmark(smoke_bench)
    assert record["base_model"] == json.loads((vanilla / "training.json").read_text())["base_model"]
    assert training["excluded"] == ["forget_incorrect"]
    assert training["rows"] == len(bench["train"]) - len(bench["forget_incorrect"])
    assert training["config"]["lr"] == 2e-3  # the vanilla's own options, as recorded


def test_a_model_medforget_did_not_fine_tune(vanilla: Path, smoke_bench: Path, tmp_path: Path) -> None:
    """No training.json: the method's defaults with the tower frozen, `--set` on top; retrain needs its base."""
    external = tmp_path / "external"
    shutil.copytree(vanilla, external)
    (external / "training.json").unlink()
    record = unlearn(external, smoke_bench, "ga", "privacy", tmp_path / "ga", [*FAST, "max_steps=1", "lr=1e-4"])
    assert record["train_config"]["train_vision"] is False and record["train_config"]["lr"] == 1e-4
    with pytest.raises(MedforgetError, match="names no base_model"):
        unlearn(external, smoke_bench, "retrain", "privacy", tmp_path / "oracle", [*FAST, "max_steps=1"])


def test_not_a_fine_tuned_model_is_refused(vanilla: Path, smoke_bench: Path, tmp_path: Path) -> None:
    pretrained = tmp_path / "pretrained"
    shutil.copytree(vanilla, pretrained)
    (pretrained / "training.json").write_text(json.dumps({"stage": "pretrain"}))
    with pytest.raises(MedforgetError, match="records stage 'pretrain'"):
        unlearn(pretrained, smoke_bench, "ga", "privacy", tmp_path / "out")
    (pretrained / "training.json").write_text(json.dumps({"stage": "train"}))
    (pretrained / "model.safetensors").unlink()
    with pytest.raises(MedforgetError, match="no weights"):
        unlearn(pretrained, smoke_bench, "ga", "privacy", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_empty_forget_set_is_refused(vanilla: Path, smoke_bench: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from medforget.methods import unlearn as module

    def without_incorrect(folder):
        bench = load_benchmark(folder)
        bench.splits["forget_incorrect"] = bench.splits["forget_incorrect"].select([])
        return bench

    monkeypatch.setattr(module, "load_benchmark", without_incorrect)
    with pytest.raises(MedforgetError, match="nothing to forget: forget_incorrect"):
        unlearn(vanilla, smoke_bench, "npo", "incorrect", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_failure_without_checkpoint_leaves_nothing(vanilla: Path, smoke_bench: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(GradDiff, "objective", fail)
    with pytest.raises(RuntimeError, match="boom"):
        unlearn(vanilla, smoke_bench, "grad_diff", "privacy", tmp_path / "out", FAST)
    assert not (tmp_path / "out").exists()


def test_output_folder_rules(vanilla: Path, smoke_bench: Path, tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "note.txt").write_text("keep me")
    with pytest.raises(MedforgetError, match="is not empty; pass --overwrite"):
        unlearn(vanilla, smoke_bench, "ga", "privacy", taken)
    assert (taken / "note.txt").read_text() == "keep me"
    with pytest.raises(MedforgetError, match="would contain or replace the input"):
        unlearn(vanilla, smoke_bench, "ga", "privacy", vanilla, overwrite=True)
    assert (vanilla / "model.safetensors").is_file()
    with pytest.raises(MedforgetError, match="lora_r must be > 0"):
        unlearn(vanilla, smoke_bench, "smfa", "privacy", tmp_path / "out", ["lora_r=0"])
    assert not (tmp_path / "out").exists()

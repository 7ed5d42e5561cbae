"""The training stages: init-model, resumable training, the oracle's data, and two-process launch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForImageTextToText

from medforget.errors import MedforgetError
from medforget.models.loading import load_model
from medforget.models.weights import load_state
from medforget.train.config import TrainConfig
from medforget.train.examples import format_rows
from medforget.train.loop import CHECKPOINT_DIR, RECORD_FILE, length_groups, train
from medforget.train.stages import benchmark_texts, init_model, run_stage, training_rows
from medforget.world import load_benchmark


@pytest.fixture(scope="module")
def base_model(smoke_bench, tmp_path_factory) -> Path:
    return init_model(smoke_bench, tmp_path_factory.mktemp("models") / "base")


def test_init_model_loads_like_a_hub_checkpoint(base_model):
    model = AutoModelForImageTextToText.from_pretrained(base_model)
    assert type(model).__name__ == "LlavaForConditionalGeneration"
    assert not [p for p in base_model.iterdir() if p.suffix in (".bin", ".pt")]


def test_oracle_data_excludes_exactly_the_forget_splits(smoke_bench):
    bench = load_benchmark(smoke_bench)
    everything = training_rows(bench, "train")
    oracle = training_rows(bench, "train", ["forget"])
    forget_ids = set(bench["forget_privacy"]["id"]) | set(bench["forget_incorrect"]["id"])
    assert len(everything) - len(oracle) == len(forget_ids)
    assert not forget_ids & {r["id"] for r in oracle}
    with pytest.raises(MedforgetError, match="cannot exclude"):
        training_rows(bench, "train", ["everything"])


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


class Killed(Exception):
    pass


def test_a_killed_run_resumes_to_the_same_weights(smoke_bench, base_model, tmp_path):
    bench = load_benchmark(smoke_bench)
    cfg = TrainConfig(max_steps=6, batch_size=8, lr=1e-3, save_every=2)

    def run(out: Path, kill_at: int | None = None):
        model, processor = load_model(base_model)
        examples = format_rows(bench, bench["train"].to_list()[:64], processor)

        def report(info: dict) -> None:
            if kill_at is not None and info["step"] == kill_at:
                raise Killed

        return train(model, processor, examples, cfg, out, report=report)

    whole = run(tmp_path / "whole")
    with pytest.raises(Killed):
        run(tmp_path / "resumed", kill_at=5)
    assert (tmp_path / "resumed" / CHECKPOINT_DIR / "state.json").is_file()
    resumed = run(tmp_path / "resumed")
    assert resumed.resumed_from == 4 and len(resumed.losses) == 2
    assert resumed.losses == pytest.approx(whole.losses[4:], rel=1e-5)
    a, b = _weights(tmp_path / "whole"), _weights(tmp_path / "resumed")
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert not (tmp_path / "resumed" / CHECKPOINT_DIR).exists()


def test_a_killed_run_of_a_tied_embedding_model_resumes_to_the_same_weights(smoke_bench, tmp_path):
    """Qwen2-VL ties lm_head to the input embeddings, as its small checkpoints do: the periodic checkpoint
    must write them (safetensors refuses shared tensors) and the resumed run end where the whole one does."""
    from families import FAMILIES

    bench = load_benchmark(smoke_bench)
    rows = bench["train"].to_list()[:24]
    cfg = TrainConfig(max_steps=6, batch_size=4, lr=1e-3, save_every=2, train_vision=False)

    def run(out: Path, kill_at: int | None = None):
        model, processor = FAMILIES["qwen2_vl"].build(benchmark_texts(bench), out)
        assert model.get_output_embeddings().weight is model.get_input_embeddings().weight

        def report(info: dict) -> None:
            if kill_at is not None and info["step"] == kill_at:
                raise Killed

        return train(model, processor, format_rows(bench, rows, processor), cfg, out, report=report)

    whole = run(tmp_path / "whole")
    with pytest.raises(Killed):
        run(tmp_path / "resumed", kill_at=5)
    checkpoint = tmp_path / "resumed" / CHECKPOINT_DIR
    assert load_state(checkpoint / "model.safetensors").keys() >= {"lm_head.weight", "model.language_model.embed_tokens.weight"}
    assert not checkpoint.with_name(CHECKPOINT_DIR + ".tmp").exists()
    resumed = run(tmp_path / "resumed")
    assert resumed.resumed_from == 4
    assert resumed.losses == pytest.approx(whole.losses[4:], rel=1e-5)
    a, b = _weights(tmp_path / "whole"), _weights(tmp_path / "resumed")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_failed_checkpoint_leaves_the_last_one_and_no_temporary_folder(smoke_bench, base_model, tmp_path, monkeypatch):
    from medforget.train import loop

    bench = load_benchmark(smoke_bench)
    model, processor = load_model(base_model)
    examples = format_rows(bench, bench["train"].to_list()[:16], processor)
    real, calls = loop.save_state, []

    def fail_the_second(state, path):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        real(state, path)

    monkeypatch.setattr(loop, "save_state", fail_the_second)
    with pytest.raises(OSError, match="disk full"):
        train(model, processor, examples, TrainConfig(max_steps=6, batch_size=4, save_every=2), tmp_path)
    assert json.loads((tmp_path / CHECKPOINT_DIR / "state.json").read_text())["step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_DIR]


def test_a_run_killed_while_swapping_checkpoints_resumes_from_the_previous_one(smoke_bench, base_model, tmp_path, monkeypatch):
    bench = load_benchmark(smoke_bench)
    cfg = TrainConfig(max_steps=6, batch_size=4, save_every=2)
    folder = tmp_path / CHECKPOINT_DIR
    old = folder.with_name(CHECKPOINT_DIR + ".old")
    real = os.replace

    def killed_between_the_renames(source, target):
        if Path(target) == folder and old.exists():
            raise Killed
        real(source, target)

    def run():
        model, processor = load_model(base_model)
        return train(model, processor, format_rows(bench, bench["train"].to_list()[:16], processor), cfg, tmp_path)

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", killed_between_the_renames)
        with pytest.raises(Killed):
            run()
    assert not folder.exists() and json.loads((old / "state.json").read_text())["step"] == 2
    assert run().resumed_from == 2
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(CHECKPOINT_DIR)) == []


def test_finished_output_is_not_overwritten_without_asking(smoke_bench, base_model, tmp_path):
    cfg = TrainConfig(max_steps=1, batch_size=4, save_every=0)
    out = tmp_path / "ft"
    run_stage(base_model, smoke_bench, out, "train", cfg)
    assert (out / RECORD_FILE).is_file()
    with pytest.raises(MedforgetError, match="--overwrite"):
        run_stage(base_model, smoke_bench, out, "train", cfg)


@pytest.mark.slow
def test_finetune_with_accelerate_launch_on_two_processes(smoke_bench, base_model, tmp_path):
    """Two CPU processes over gloo (torchrun under accelerate), then the saved model loads."""
    out = tmp_path / "ddp"
    env = dict(os.environ, ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1")
    accelerate = Path(sys.executable).with_name("accelerate")
    cmd = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "medforget", "finetune",
           "--model", str(base_model), "--bench", str(smoke_bench), "--out", str(out), "--max-steps", "3"]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    record = (out / RECORD_FILE).read_text()
    assert '"processes": 2' in record
    model, _ = load_model(out)
    assert sum(p.numel() for p in model.parameters()) > 0


def test_length_groups_split_mixed_batches_and_keep_every_index():
    lengths = [30] * 6 + [95] * 10
    groups = length_groups(list(range(16)), lengths)
    assert len(groups) == 2 and sorted(groups[0] + groups[1]) == list(range(16))
    assert {lengths[i] for i in groups[0]} == {30} and {lengths[i] for i in groups[1]} == {95}
    assert length_groups(list(range(10)), [50 + i for i in range(10)]) == [list(range(10))]  # nothing to save


def test_length_grouped_loss_equals_the_whole_batch_loss(smoke_bench, base_model):
    """Weighting each group's mean by its share of answer tokens gives the loss (and so the gradient) of the
    whole batch: splitting by length only removes padding."""
    from medforget.data.collate import collate, pad_token_id
    from medforget.models.loss import answer_token_counts, answer_token_loss

    bench = load_benchmark(smoke_bench)
    rows = training_rows(bench, "train")
    text = [r for r in rows if not r["scan_ids"]][:5]
    image = [r for r in rows if r["scan_ids"]][:7]
    model, processor = load_model(base_model)
    model.eval()
    examples = format_rows(bench, text + image, processor)
    pad = pad_token_id(processor)
    lengths = [e.tokens["input_ids"].shape[0] for e in examples]
    groups = length_groups(list(range(len(examples))), lengths)
    assert len(groups) == 2
    with torch.no_grad():
        whole = collate(examples, pad_token_id=pad)
        expected = answer_token_loss(model, whole)
        total = answer_token_counts(whole).sum()
        got = sum(
            answer_token_loss(model, batch) * answer_token_counts(batch).sum() / total
            for batch in (collate([examples[i] for i in g], pad_token_id=pad) for g in groups)
        )
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_an_explicit_epoch_count_replaces_a_preset_step_limit():
    preset = TrainConfig(max_steps=850, lr=2e-3)
    assert preset.with_overrides(epochs=3.0).max_steps is None
    assert preset.with_overrides(epochs=3.0, max_steps=10).max_steps == 10
    assert preset.with_overrides(lr=1e-3, epochs=None).max_steps == 850
    with pytest.raises(MedforgetError, match="unknown training option"):
        preset.with_overrides(epoch=3)

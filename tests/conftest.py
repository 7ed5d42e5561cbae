import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from medforget.world.build import generate  # noqa: E402
from medforget.world.config import preset_config  # noqa: E402


@pytest.fixture(scope="session")
def smoke_bench(tmp_path_factory) -> Path:
    """One smoke benchmark shared by the tests that only read it."""
    out = tmp_path_factory.mktemp("bench") / "smoke"
    generate(preset_config("smoke"), seed=0, forget_ratio=0.1, out=out)
    return out


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module: on a shared 2-core machine two contended OpenMP threads make tiny-model
    steps 10-100x slower, and the tiny model gains nothing from a second thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def vanilla(smoke_bench: Path, tmp_path_factory) -> Path:
    """A tiny model fine-tuned on `train` for a few steps through the real finetune stage (read-only: the
    method tests unlearn from it)."""
    from medforget.models.tiny import build_tiny_model
    from medforget.train.config import TrainConfig
    from medforget.train.stages import benchmark_texts, run_stage
    from medforget.world.storage import load_benchmark

    root = tmp_path_factory.mktemp("models")
    bench = load_benchmark(smoke_bench)
    build_tiny_model(benchmark_texts(bench), root / "tiny", image_size=bench.meta["config"]["image_size"])
    run_stage(root / "tiny", smoke_bench, root / "vanilla", "train", TrainConfig(max_steps=2, batch_size=4, lr=2e-3, save_every=0))
    return root / "vanilla"

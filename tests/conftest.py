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

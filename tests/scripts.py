"""Load a script of benchmarks/ as a module, so that its tests can call its functions and `main(argv)`, and
build the run folder those scripts take."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from medforget.train.stages import init_model

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_script(name: str) -> ModuleType:
    """benchmarks/<name>.py, executed once per call under the module name `name` (dataclasses look their
    module up in sys.modules while it executes)."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def smoke_run_folder(bench: Path, folder: Path, model: str = "vanilla") -> Path:
    """A `medforget run`-like folder: `bench` linked in, and `models/<model>` an untrained tiny model."""
    (folder / "models").mkdir(parents=True)
    (folder / "bench").symlink_to(bench)
    init_model(bench, folder / "models" / model)
    return folder

"""Read a run folder into one `Run`, tolerating missing pieces.

A report is most wanted when a run is half done or half broken (a method crashed, the oracle is still
training), so nothing here raises for a missing model, evaluation or benchmark: it is recorded in
`Run.notes` and the report shows what exists. Only a folder with nothing to report is an error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from pyarrow import ArrowException

from medforget.errors import MedforgetError
from medforget.evaluate.run import read_items
from medforget.world.storage import Benchmark, load_benchmark

KINDS: tuple[str, ...] = ("base", "vanilla", "oracle", "method")


@dataclass(frozen=True)
class ModelEntry:
    """One model of the run as run.json describes it (or as its eval file name suggests)."""

    name: str
    kind: str
    method: str | None = None
    seconds: float | None = None
    path: str | None = None


@dataclass
class Run:
    """Everything a report reads. `metrics`/`items` hold only the models whose files could be read."""

    folder: Path
    info: dict
    models: list[ModelEntry]
    metrics: dict[str, dict] = field(default_factory=dict)
    items: dict[str, list[dict]] = field(default_factory=dict)
    bench: Benchmark | None = None
    notes: list[str] = field(default_factory=list)

    def named(self, kind: str) -> str | None:
        """The first model of a kind (the run's vanilla or oracle), None if the run has none."""
        return next((m.name for m in self.models if m.kind == kind), None)

    @property
    def scenario(self) -> str:
        return self.info.get("scenario") or "both"


def _kind_from_name(name: str) -> str:
    return name if name in KINDS[:3] else "method"


def _read_json(path: Path, notes: list[str]) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        notes.append(f"{path.name} could not be read ({type(e).__name__}: {e})")
        return None
    if not isinstance(data, dict):
        notes.append(f"{path.name} does not hold a JSON object")
        return None
    return data


def _entries(info: dict, evaluated: list[str]) -> list[ModelEntry]:
    """run.json's models plus any evaluated model it does not list; base, vanilla, oracle, then methods
    in the order of run.json's `methods`."""
    described = info.get("models") or {}
    entries = {
        name: ModelEntry(name, m.get("kind") or _kind_from_name(name), m.get("method"), m.get("seconds"), m.get("path"))
        for name, m in described.items()
    }
    for name in evaluated:
        kind = _kind_from_name(name)
        entries.setdefault(name, ModelEntry(name, kind, name if kind == "method" else None))
    methods = list(info.get("methods") or [])

    def order(e: ModelEntry) -> tuple:
        kind = KINDS.index(e.kind) if e.kind in KINDS else len(KINDS)
        method = methods.index(e.name) if e.name in methods else len(methods)
        return kind, method, e.name

    return sorted(entries.values(), key=order)


def load_run(run_dir: Path | str) -> Run:
    """The run in `run_dir`: run.json, every eval/<model>.json and .parquet, and the benchmark in bench/."""
    folder = Path(run_dir)
    if not folder.is_dir():
        raise MedforgetError(f"run folder {folder} does not exist")
    notes: list[str] = []
    info = _read_json(folder / "run.json", notes) if (folder / "run.json").is_file() else None
    if info is None:
        notes.append("run.json is missing: model kinds are guessed from the eval file names")
        info = {}
    evaluated = sorted(p.stem for p in (folder / "eval").glob("*.json")) if (folder / "eval").is_dir() else []
    if not evaluated and not info.get("models"):
        raise MedforgetError(f"{folder} has nothing to report: no run.json models and no eval/<model>.json files")
    run = Run(folder, info, _entries(info, evaluated), notes=notes)
    for entry in run.models:
        path = folder / "eval" / f"{entry.name}.json"
        if not path.is_file():
            notes.append(f"{entry.name}: not evaluated (no eval/{entry.name}.json)")
            continue
        metrics = _read_json(path, notes)
        if metrics is None:
            continue
        run.metrics[entry.name] = metrics
        try:
            run.items[entry.name] = read_items(path)
        except (OSError, ArrowException) as e:  # a missing file, or a damaged one
            notes.append(f"{entry.name}: per-item records unreadable (eval/{entry.name}.parquet: {e})")
    for kind in ("vanilla", "oracle"):
        if run.named(kind) is None:
            notes.append(f"the run has no {kind} model: comparisons that need it are left empty")
    if not any(m.kind == "method" for m in run.models):
        notes.append("the run has no unlearning methods: only the reference models are shown")
    try:
        run.bench = load_benchmark(folder / "bench")
    except MedforgetError as e:
        notes.append(f"no benchmark, so no example questions or scans: {e}")
    return run

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

KINDS: tuple[str, ...] = ("base", "vanilla", "oracle", "method", "reference")


@dataclass(frozen=True)
class ModelEntry:
    """One model of the run as run.json describes it (or as its eval file name suggests)."""

    name: str
    kind: str
    method: str | None = None
    seconds: float | None = None
    path: str | None = None
    scenario: str | None = None  # what an oracle left out or a method unlearned; None for base, vanilla, references


@dataclass
class Run:
    """Everything a report reads. `metrics`/`items` hold only the models whose files could be read."""

    folder: Path
    info: dict
    models: list[ModelEntry]
    metrics: dict[str, dict] = field(default_factory=dict)
    items: dict[str, list[dict]] = field(default_factory=dict)
    robust: dict[str, list[dict]] = field(default_factory=dict)  # probe records (robust/<model>.parquet), where run
    robust_info: dict[str, dict] = field(default_factory=dict)  # their summaries (robust/<model>.json)
    bench: Benchmark | None = None
    notes: list[str] = field(default_factory=list)

    def named(self, kind: str, scenario: str | None = None) -> str | None:
        """The first model of a kind (the run's vanilla, or a scenario's oracle), None if the run has none."""
        return next((m.name for m in self.models if m.kind == kind and (scenario is None or m.scenario == scenario)), None)

    @property
    def scenarios(self) -> list[str]:
        """The scenarios the run unlearned, in run order (from run.json, else from its models)."""
        listed = self.info.get("scenarios") or []
        found = [m.scenario for m in self.models if m.scenario]
        return list(dict.fromkeys([*listed, *found])) or [_legacy_scenario(self.info)]

    def models_for(self, scenario: str) -> list[ModelEntry]:
        """A scenario's leaderboard: base and vanilla (shared by every scenario), its oracle, its methods."""
        return [m for m in self.models if m.scenario in (None, scenario)]


def _legacy_scenario(info: dict) -> str:
    """A run.json written before runs held several scenarios names its one scenario (default both)."""
    return info.get("scenario") or "both"


def _kind_from_name(name: str) -> str:
    base = name.split("@")[0]
    return base if base in KINDS[:3] else "method"


def _name_scenario(name: str) -> str | None:
    """`ga@privacy` -> privacy (the pipeline's names); None for a name without a scenario."""
    return name.split("@", 1)[1] if "@" in name else None


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
    entries = {}
    for name, m in described.items():
        kind = m.get("kind") or _kind_from_name(name)
        scenario = m.get("scenario") or (None if kind in ("base", "vanilla") else _name_scenario(name) or _legacy_scenario(info))
        entries[name] = ModelEntry(name, kind, m.get("method"), m.get("seconds"), m.get("path"), scenario)
    for name in evaluated:
        kind = _kind_from_name(name)
        scenario = None if kind in ("base", "vanilla") else _name_scenario(name) or _legacy_scenario(info)
        entries.setdefault(name, ModelEntry(name, kind, name.split("@")[0] if kind == "method" else None, scenario=scenario))
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
    for entry in run.models:  # the robustness probes are optional: a run without them has no such files
        path = folder / "robust" / f"{entry.name}.json"
        if path.is_file() and (summary := _read_json(path, notes)) is not None:
            try:
                run.robust[entry.name] = read_items(path)
                run.robust_info[entry.name] = summary
            except (OSError, ArrowException) as e:
                notes.append(f"{entry.name}: robustness records unreadable (robust/{entry.name}.parquet: {e})")
    if run.named("vanilla") is None:
        notes.append("the run has no vanilla model: comparisons that need it are left empty")
    for scenario in run.scenarios:
        if run.named("oracle", scenario) is None:
            notes.append(f"the run has no oracle for the {scenario} scenario: comparisons that need it are left empty")
    if not any(m.kind == "method" for m in run.models):
        notes.append("the run has no unlearning methods: only the reference models are shown")
    try:
        run.bench = load_benchmark(folder / "bench")
    except MedforgetError as e:
        notes.append(f"no benchmark, so no example questions or scans: {e}")
    return run

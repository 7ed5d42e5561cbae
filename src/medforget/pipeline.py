"""`medforget run`: the whole benchmark as a chain of cached, resumable stages.

generate -> init -> pretrain -> vanilla, oracle@S -> unlearn (one per method and scenario S) -> eval (one per
model) -> robust (one per oracle and unlearned model: relearning, quantisation, probing) -> report

Each scenario S (privacy, incorrect, or both at once) has its own oracle, the base model fine-tuned without
S's forget set, and every method unlearns S's forget set from the vanilla model; each unlearned model is judged
against its own scenario's oracle. Each stage records the hash of its inputs (settings plus the keys of the
stages it reads) in `RUN/stages/<stage>.json` once its outputs are complete. A re-run skips a stage whose
record matches; a stage interrupted midway finds a `.pending` marker with the same key and resumes (training
stages continue from their last checkpoint); a stage whose inputs changed starts from a clean output.

Stages that do not depend on each other run side by side in `workers` processes, each with its share of the
CPU threads: the tiny default gains little from a second thread, so two one-thread stages finish in about the
time of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field, fields
from functools import partial
from multiprocessing import get_context
from pathlib import Path

import yaml

from medforget.errors import MedforgetError

STAGE_GROUPS = ("generate", "init", "pretrain", "vanilla", "oracle", "unlearn", "eval", "robust", "report")
SCENARIOS = ("privacy", "incorrect", "both")
DEFAULT_SCENARIOS = ("privacy", "incorrect")
ORACLE_EXCLUDES = {"privacy": ["forget_privacy"], "incorrect": ["forget_incorrect"], "both": ["forget"]}
#: What a scenario's models are evaluated on besides the splits every model gets (membership needs holdout).
SCENARIO_SPLITS = {
    "privacy": ("forget_privacy", "test_forget", "retain", "test_retain", "general", "holdout"),
    "incorrect": ("forget_incorrect", "test_forget", "retain", "test_retain", "general"),
    "both": ("forget_privacy", "forget_incorrect", "test_forget", "retain", "test_retain", "general", "holdout"),
}
EVAL_LIMITS = {"smoke": 40, "demo": 240, "standard": None}  # items per split evaluated (None: all)...
FULL_SPLITS = ("general",)  # ...but these: small, and the general-capability figure must not hinge on a sample
# Presets whose runs skip the robustness stages by default (the others run them; `--robustness` turns them on).
# `demo` too, for now: they add about 30 s, and make demo is at 890 of its 900 s.
ROBUSTNESS = {"smoke": False}  # relearning, quantisation and probing columns: on, except for tests' smoke runs


def every_method(world: bool = True) -> list[str]:
    """Every registered unlearning method (the retrain oracle is not one: each run trains it anyway); without
    a generated world (`run --data`), those that work on any data."""
    from medforget.methods.registry import all_methods

    return [m.name for m in all_methods() if m.name != "retrain" and (world or not m.needs_world)]


def method_list(names: list[str] | str | None, world: bool = True) -> list[str]:
    """`--methods` as given: None means the defaults (every registered method, as `all` does; an empty list: none)."""
    if names is None or "all" in ([names] if isinstance(names, str) else names):
        return every_method(world)
    return list(dict.fromkeys([names] if isinstance(names, str) else names))


def default_workers() -> int:
    return min(2, os.cpu_count() or 1)


@dataclass
class RunConfig:
    """Everything a run depends on; `run.yaml` in the run folder keeps the resolved values."""

    preset: str = "demo"
    seed: int = 0
    forget_ratio: float | None = None  # None: the preset's default
    scenarios: list[str] = field(default_factory=lambda: list(DEFAULT_SCENARIOS))
    methods: list[str] = field(default_factory=every_method)  # `--methods NAME` picks
    model: str | None = None  # a checkpoint (path or hub id) to fine-tune instead of the embedded default
    model_size: str = "tiny"
    eval_limit: int | None = -1  # -1: the preset's default
    method_settings: dict[str, list[str]] = field(default_factory=dict)  # method -> ["key=value", ...]
    workers: int = field(default_factory=default_workers)  # stages run side by side (1: one after another)
    robustness: bool | None = None  # relearning, quantisation and probing of each oracle and method; None: the preset's default
    identity_cue: str = "marker"  # what tells patients apart in their scans (`generate --identity-cue`)

    def __post_init__(self) -> None:
        from medforget.methods.registry import get_method
        from medforget.world.config import check_forget_ratio, check_identity_cue, default_forget_ratio, preset_config

        preset_config(self.preset)
        check_identity_cue(self.identity_cue)
        if self.forget_ratio is None:
            self.forget_ratio = default_forget_ratio(self.preset)
        check_forget_ratio(self.forget_ratio)
        if isinstance(self.scenarios, str):
            self.scenarios = [self.scenarios]
        unknown = [s for s in self.scenarios if s not in SCENARIOS]
        if unknown or not self.scenarios:
            raise MedforgetError(f"unknown scenario {', '.join(map(repr, unknown)) or '(none given)'}; choose from: {', '.join(SCENARIOS)}")
        self.scenarios = list(dict.fromkeys(self.scenarios))
        self.methods = method_list(self.methods)
        for name in self.methods:
            get_method(name)
        if self.eval_limit == -1:
            self.eval_limit = EVAL_LIMITS.get(self.preset)
        if self.robustness is None:
            self.robustness = ROBUSTNESS.get(self.preset, True)
        if self.workers < 1:
            raise MedforgetError(f"workers must be at least 1, got {self.workers}")

    @classmethod
    def from_yaml(cls, path: Path, **overrides: object) -> "RunConfig":
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except FileNotFoundError:
            raise MedforgetError(f"config file {path} does not exist") from None
        except yaml.YAMLError as e:
            raise MedforgetError(f"config file {path} is not valid YAML: {str(e).splitlines()[0]}") from None
        if not isinstance(data, dict):
            raise MedforgetError(f"config file {path} must hold a mapping of settings")
        if "scenario" in data and "scenarios" not in data:  # the one-scenario spelling
            data["scenarios"] = data.pop("scenario")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise MedforgetError(f"unknown setting(s) in {path}: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**data)

    def to_dict(self) -> dict:
        return asdict(self)


def model_name(kind: str, scenario: str) -> str:
    """The name of a scenario's oracle or unlearned model: `oracle@privacy`, `ga@incorrect`."""
    return f"{kind}@{scenario}"


def _group(name: str) -> str:
    """The stage group `--force` names: `unlearn:ga@privacy` -> unlearn, `oracle@incorrect` -> oracle."""
    return name.split(":")[0].split("@")[0]


def _key(inputs: dict) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()


Job = Callable[..., dict | None]  # job(fresh, report=None): picklable, so that a worker process can run it


@dataclass
class Stage:
    name: str
    key: str
    inputs: dict
    outputs: list[Path]
    job: Job
    after: list[str]  # stages whose outputs this one reads
    heavy: bool  # runs in a worker process when there are workers (model training and evaluation)


class Runner:
    """Declares stages, then runs them in dependency order, skipping those whose recorded inputs match and
    running independent ones side by side."""

    def __init__(self, run_dir: Path, force: list[str], log: Callable[[str], None]) -> None:
        self.run_dir, self.log = Path(run_dir), log
        self.stages_dir = self.run_dir / "stages"
        self.stages_dir.mkdir(parents=True, exist_ok=True)
        unknown = [f for f in force if f not in STAGE_GROUPS]
        if unknown:
            raise MedforgetError(f"--force takes a stage: {', '.join(STAGE_GROUPS)} (got {', '.join(unknown)})")
        first = min((STAGE_GROUPS.index(f) for f in force), default=len(STAGE_GROUPS))
        self.forced = set(STAGE_GROUPS[first:])
        self.keys: dict[str, str] = {}
        self.stages: dict[str, Stage] = {}
        self.records: dict[str, dict] = {}
        self.ran: list[str] = []
        self.skipped: list[str] = []

    def add(self, name: str, inputs: dict, outputs: list[Path], job: Job, after: list[str] = (), heavy: bool = True) -> str:
        """Declare a stage; its key (and so the keys of the stages that read it) is known at once."""
        key = _key(inputs)
        self.keys[name] = key
        self.stages[name] = Stage(name, key, inputs, outputs, job, list(after), heavy)
        return key

    def _paths(self, name: str) -> tuple[Path, Path]:
        slug = name.replace(":", "-").replace("@", "-")
        return self.stages_dir / f"{slug}.json", self.stages_dir / f"{slug}.pending"

    def _up_to_date(self, stage: Stage) -> dict | None:
        record_path, _ = self._paths(stage.name)
        if _group(stage.name) in self.forced or not record_path.is_file() or not all(p.exists() for p in stage.outputs):
            return None
        record = json.loads(record_path.read_text())
        return record if record.get("key") == stage.key else None

    def _begin(self, stage: Stage) -> bool:
        """Clear the outputs unless resuming; returns `fresh`."""
        _, pending = self._paths(stage.name)
        resuming = pending.is_file() and pending.read_text() == stage.key and _group(stage.name) not in self.forced
        if not resuming:
            for p in stage.outputs:
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
        pending.write_text(stage.key)
        self.log(f"[bold]{stage.name}[/]: {'resuming' if resuming else 'running'}")
        return not resuming

    def _finish(self, stage: Stage, info: dict | None, seconds: float) -> None:
        record_path, pending = self._paths(stage.name)
        record = {"key": stage.key, "inputs": stage.inputs, "seconds": round(seconds, 1), "info": info or {}}
        tmp = record_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=2, default=str) + "\n")
        os.replace(tmp, record_path)
        pending.unlink(missing_ok=True)
        self.records[stage.name] = record
        self.ran.append(stage.name)
        self.log(f"{stage.name}: done in {record['seconds']:.0f} s")

    def ancestors(self, name: str) -> set[str]:
        out: set[str] = set()
        stack = list(self.stages[name].after)
        while stack:
            parent = stack.pop()
            if parent not in out:
                out.add(parent)
                stack += self.stages[parent].after
        return out

    def threads(self, name: str) -> int:
        """CPU threads for a stage: all of them for a stage that no other stage can run beside (pretraining:
        everything else comes before or after it), half for the others. A function of the stage graph only,
        never of timing or of `workers`, so that a stage computes the same numbers however the run is scheduled
        (a different thread count changes the order of floating-point sums)."""
        cpus = os.cpu_count() or 1
        related = self.ancestors(name) | {n for n in self.stages if name in self.ancestors(n)} | {name}
        return cpus if related == set(self.stages) else max(1, cpus // 2)

    def execute(self, workers: int = 1, report: Callable[[str], Callable[[dict], None] | None] = lambda stage: None) -> None:
        """Run every declared stage. With one worker everything runs here, in order, with progress reports;
        with more, heavy stages run in worker processes side by side."""
        todo = list(self.stages)
        for name in todo:
            record = self._up_to_date(self.stages[name])
            if record is not None:
                self.records[name] = record
                self.skipped.append(name)
                self.log(f"[dim]{name}: up to date, skipped[/]")
        todo = [n for n in todo if n not in self.records]
        if workers <= 1:
            import torch

            from medforget.data.memo import remembering

            default = torch.get_num_threads()
            with remembering():
                for name in todo:
                    stage = self.stages[name]
                    fresh, began = self._begin(stage), time.perf_counter()
                    _stage_state(self.threads(name) if stage.heavy else default)
                    try:
                        info = stage.job(fresh, report=report(name))
                    finally:
                        torch.set_num_threads(default)
                    self._finish(stage, info, time.perf_counter() - began)
            return
        running: dict[Future, tuple[Stage, float]] = {}
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            while todo or running:
                ready = [n for n in todo if all(d in self.records for d in self.stages[n].after)]
                for name in ready[: max(0, workers - len(running))]:
                    stage = self.stages[name]
                    todo.remove(name)
                    fresh, began = self._begin(stage), time.perf_counter()
                    if not stage.heavy:
                        self._finish(stage, stage.job(fresh), time.perf_counter() - began)
                        continue
                    running[pool.submit(_in_worker, stage.job, fresh, self.threads(name))] = (stage, began)
                if not running:
                    if todo and not ready:
                        raise MedforgetError(f"stages {', '.join(todo)} wait for stages that never run")
                    continue
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    stage, began = running.pop(future)
                    self._finish(stage, future.result(), time.perf_counter() - began)


def _in_worker(job: Job, fresh: bool, threads: int) -> dict | None:
    """A stage in a worker process: its thread share, no per-file progress bars (the parent logs stages), and
    the formatting memo, which the worker keeps for the later stages it runs."""
    import warnings

    from transformers.utils import logging as hf_logging

    from medforget.data import memo

    os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=FutureWarning)
    _stage_state(threads)
    memo.enable()
    return job(fresh)


def _stage_state(threads: int) -> None:
    """What a stage starts from, in this process or a reused worker: its thread count and one random state,
    so that it never depends on the stage that ran before it in the same process."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)


# --- the jobs: module-level functions with plain arguments, so that worker processes can run them ---

def _generate_job(fresh: bool, preset: str, seed: int, forget_ratio: float, out: Path, identity_cue: str, report=None) -> dict:
    from medforget.world.build import generate
    from medforget.world.config import preset_config

    cfg = preset_config(preset).with_overrides(identity_cue=identity_cue)
    return {"hash": generate(cfg, seed, forget_ratio, out, overwrite=True)["content_hash"]}


def _init_job(fresh: bool, bench: Path, out: Path, size: str, seed: int, report=None) -> None:
    from medforget.train.stages import init_model

    init_model(bench, out, size=size, seed=seed, overwrite=True)


def _train_job(fresh: bool, source: str | Path, bench: Path, out: Path, split: str, train_cfg, exclude: list[str],
               vision=None, report=None) -> dict:
    from medforget.train.stages import run_stage

    result = run_stage(source, bench, out, split, train_cfg, exclude=exclude, overwrite=fresh, report=report, vision_warmup=vision)
    return {"steps": result.steps, "train_seconds": round(result.seconds, 1)}


def _unlearn_job(fresh: bool, vanilla: Path, bench: Path, method: str, scenario: str, out: Path, settings: list[str],
                 report=None) -> dict:
    from medforget.methods.unlearn import unlearn

    return unlearn(vanilla, bench, method, scenario, out, settings, report, overwrite=fresh)


def _eval_job(fresh: bool, folder: Path, bench: Path, splits: tuple[str, ...], limit: int | None, out: Path, report=None) -> dict:
    from medforget.evaluate.run import evaluate_model, write_results

    metrics, records = evaluate_model(folder, bench, splits, limit=limit, full=FULL_SPLITS)
    write_results(metrics, records, out)
    return {"eval_seconds": metrics["seconds"]}


def _robust_job(fresh: bool, folder: Path, bench: Path, scenario: str, cfg: dict, out: Path, report=None) -> dict:
    from medforget.evaluate.robustness import RobustnessConfig, probe_folder
    from medforget.evaluate.run import write_results

    records, summary = probe_folder(folder, bench, scenario, RobustnessConfig(**cfg))
    write_results(summary, records, out)
    return {"robust_seconds": summary["total_seconds"]}


def _report_job(fresh: bool, run_dir: Path, report=None) -> dict:
    from medforget.report import build_report

    return {k: str(v) for k, v in build_report(run_dir).items()}


def run_pipeline(
    cfg: RunConfig, run_dir: Path, *, force: list[str] = (), log: Callable[[str], None] = print,
    train_report: Callable[[str], Callable[[dict], None] | None] = lambda stage: None,
) -> Runner:
    """Run (or resume) every stage of a benchmark run into `run_dir`, then write the report."""
    from medforget.evaluate.run import DEFAULT_SPLITS
    from medforget.methods.registry import get_method, param_defaults
    from medforget.train.config import stage_config, vision_config
    from medforget.world.build import generator_digest

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "run.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=True))
    runner = Runner(run_dir, list(force), log)
    bench = run_dir / "bench"
    models = run_dir / "models"

    runner.add("generate", {"preset": cfg.preset, "seed": cfg.seed, "forget_ratio": cfg.forget_ratio,
                            "identity_cue": cfg.identity_cue, "generator": generator_digest()}, [bench],
               partial(_generate_job, preset=cfg.preset, seed=cfg.seed, forget_ratio=cfg.forget_ratio, out=bench,
                       identity_cue=cfg.identity_cue), heavy=False)

    def training(name: str, stage: str, split: str, source: str | Path, out: Path, exclude: list[str], after: list[str],
                 start_key: dict, warmup: bool = False) -> None:
        train_cfg = stage_config(cfg.preset, stage)
        vision = vision_config(cfg.preset) if warmup else None
        inputs = {**start_key, "bench": runner.keys["generate"], "train": train_cfg.to_dict()}
        if vision is not None:
            inputs["vision"] = asdict(vision)
        if exclude:
            inputs["exclude"] = exclude
        runner.add(name, inputs, [out], partial(_train_job, source=source, bench=bench, out=out, split=split,
                                                train_cfg=train_cfg, exclude=exclude, vision=vision), after=after)

    if cfg.model:
        start, start_key, start_after = cfg.model, {"model": cfg.model}, ["generate"]
    else:
        runner.add("init", {"bench": runner.keys["generate"], "size": cfg.model_size, "seed": cfg.seed}, [models / "base"],
                   partial(_init_job, bench=bench, out=models / "base", size=cfg.model_size, seed=cfg.seed),
                   after=["generate"], heavy=False)
        training("pretrain", "pretrain", "pretrain", models / "base", models / "pretrained", [], ["init"],
                 {"init": runner.keys["init"]}, warmup=True)
        start, start_key, start_after = models / "pretrained", {"pretrain": runner.keys["pretrain"]}, ["pretrain"]

    training("vanilla", "finetune", "train", start, models / "vanilla", [], start_after, start_key)
    entries: dict[str, dict] = {}  # evaluated model -> its run.json entry and the stage that made it
    if not cfg.model:  # "base" is the pretrained model: it reads scans but has seen no patient (chance level)
        entries["base"] = {"kind": "base", "stage": "pretrain", "path": models / "pretrained", "scenario": None}
    entries["vanilla"] = {"kind": "vanilla", "stage": "vanilla", "path": models / "vanilla", "scenario": None}
    for scenario in cfg.scenarios:
        oracle = model_name("oracle", scenario)
        training(oracle, "finetune", "train", start, models / oracle, ORACLE_EXCLUDES[scenario], start_after, start_key)
        entries[oracle] = {"kind": "oracle", "stage": oracle, "path": models / oracle, "scenario": scenario}
    for scenario in cfg.scenarios:
        for method in cfg.methods:
            name = model_name(method, scenario)
            settings = cfg.method_settings.get(method, [])
            impl = get_method(method)  # its defaults are part of the key, so changing a default re-runs the method
            defaults = {"params": param_defaults(impl), "train": impl.train_defaults.to_dict() if impl.train_defaults else None}
            runner.add(f"unlearn:{name}", {"vanilla": runner.keys["vanilla"], "method": method, "scenario": scenario,
                                           "settings": settings, "defaults": defaults}, [models / name],
                       partial(_unlearn_job, vanilla=models / "vanilla", bench=bench, method=method, scenario=scenario,
                               out=models / name, settings=settings), after=["vanilla"])
            entries[name] = {"kind": "method", "method": method, "stage": f"unlearn:{name}", "path": models / name, "scenario": scenario}

    for name, entry in entries.items():
        out = run_dir / "eval" / f"{name}.json"
        splits = SCENARIO_SPLITS[entry["scenario"]] if entry["scenario"] else DEFAULT_SPLITS
        runner.add(f"eval:{name}", {"model": runner.keys[entry["stage"]], "limit": cfg.eval_limit, "full": FULL_SPLITS,
                                    "splits": list(splits)},
                   [out, out.with_suffix(".parquet")],
                   partial(_eval_job, folder=entry["path"], bench=bench, splits=splits, limit=cfg.eval_limit, out=out),
                   after=[entry["stage"]])
    robust = []
    if cfg.robustness:
        from medforget.evaluate.robustness import preset_robustness

        settings = preset_robustness(cfg.preset).to_dict()
        for name, entry in entries.items():
            if entry["scenario"] is None:  # base and vanilla: nothing was forgotten
                continue
            out = run_dir / "robust" / f"{name}.json"
            runner.add(f"robust:{name}", {"model": runner.keys[entry["stage"]], "scenario": entry["scenario"], "robustness": settings},
                       [out, out.with_suffix(".parquet")],
                       partial(_robust_job, folder=entry["path"], bench=bench, scenario=entry["scenario"], cfg=settings, out=out),
                       after=[entry["stage"]])
            robust.append(f"robust:{name}")

    def write_run_info() -> None:
        info = {
            "name": run_dir.name, "preset": cfg.preset, "seed": cfg.seed, "scenarios": cfg.scenarios, "methods": cfg.methods,
            "models": {
                name: {"kind": e["kind"], "method": e.get("method"), "scenario": e["scenario"], "path": str(e["path"]),
                       "seconds": (runner.records.get(e["stage"]) or {}).get("seconds") if e["kind"] != "base" else None}
                for name, e in entries.items()
            },
        }
        (run_dir / "run.json").write_text(json.dumps(info, indent=2) + "\n")

    def report_job(fresh: bool, report=None) -> dict:  # runs here (not heavy): run.json first, with the times so far
        write_run_info()
        return _report_job(fresh, run_dir)

    evals = [f"eval:{name}" for name in entries] + robust
    runner.add("report", {"evals": {n: runner.keys[n] for n in evals}},
               [run_dir / "report.html", run_dir / "leaderboard.md", run_dir / "results.json"],
               report_job, after=evals, heavy=False)
    runner.execute(cfg.workers, train_report)
    write_run_info()
    return runner

"""`medforget run`: the whole benchmark as a chain of cached, resumable stages.

generate -> init -> pretrain -> vanilla -> oracle -> unlearn (one per method) -> eval (one per model) -> report

Each stage records the hash of its inputs (settings plus the keys of the stages it reads) in
`RUN/stages/<stage>.json` once its outputs are complete. A re-run skips a stage whose record matches; a
stage interrupted midway finds a `.pending` marker with the same key and resumes (training stages continue
from their last checkpoint); a stage whose inputs changed starts from a clean output.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from medforget.errors import MedforgetError

STAGE_GROUPS = ("generate", "init", "pretrain", "vanilla", "oracle", "unlearn", "eval", "report")
SCENARIOS = ("privacy", "incorrect", "both")
ORACLE_EXCLUDES = {"privacy": ["forget_privacy"], "incorrect": ["forget_incorrect"], "both": ["forget"]}
EVAL_LIMITS = {"smoke": 40, "demo": 240, "standard": None}  # items per split evaluated (None: all)...
FULL_SPLITS = ("general",)  # ...but these: small, and the general-capability figure must not hinge on a sample


def default_methods() -> list[str]:
    from medforget.methods.registry import all_methods

    return [m.name for m in all_methods() if m.name != "retrain"]


@dataclass
class RunConfig:
    """Everything a run depends on; `run.yaml` in the run folder keeps the resolved values."""

    preset: str = "demo"
    seed: int = 0
    forget_ratio: float = 0.1
    scenario: str = "privacy"
    methods: list[str] = field(default_factory=default_methods)
    model: str | None = None  # a checkpoint (path or hub id) to fine-tune instead of the embedded default
    model_size: str = "tiny"
    eval_limit: int | None = -1  # -1: the preset's default
    method_settings: dict[str, list[str]] = field(default_factory=dict)  # method -> ["key=value", ...]

    def __post_init__(self) -> None:
        from medforget.methods.registry import get_method
        from medforget.world.config import check_forget_ratio, preset_config

        preset_config(self.preset)
        check_forget_ratio(self.forget_ratio)
        if self.scenario not in SCENARIOS:
            raise MedforgetError(f"unknown scenario {self.scenario!r}; choose one of: {', '.join(SCENARIOS)}")
        for name in self.methods:
            get_method(name)
        if self.eval_limit == -1:
            self.eval_limit = EVAL_LIMITS.get(self.preset)

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
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise MedforgetError(f"unknown setting(s) in {path}: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**data)

    def to_dict(self) -> dict:
        return asdict(self)


def _key(inputs: dict) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()


class Runner:
    """Runs named stages in order, skipping those whose recorded inputs match."""

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
        self.ran: list[str] = []
        self.skipped: list[str] = []

    def stage(self, name: str, inputs: dict, outputs: list[Path], fn: Callable[[bool], dict | None]) -> dict:
        """Run `fn(fresh)` unless a record with the same key exists; `fresh` says outputs were cleared."""
        group = name.split(":")[0]
        key = _key(inputs)
        self.keys[name] = key
        slug = name.replace(":", "-")
        record_path = self.stages_dir / f"{slug}.json"
        pending = self.stages_dir / f"{slug}.pending"
        if group not in self.forced and record_path.is_file() and all(p.exists() for p in outputs):
            record = json.loads(record_path.read_text())
            if record.get("key") == key:
                self.skipped.append(name)
                self.log(f"[dim]{name}: up to date, skipped[/]")
                return record
        resuming = pending.is_file() and pending.read_text() == key and group not in self.forced
        if not resuming:
            for p in outputs:
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
        pending.write_text(key)
        self.log(f"[bold]{name}[/]: {'resuming' if resuming else 'running'}")
        began = time.perf_counter()
        info = fn(not resuming) or {}
        record = {"key": key, "inputs": inputs, "seconds": round(time.perf_counter() - began, 1), "info": info}
        tmp = record_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=2, default=str) + "\n")
        os.replace(tmp, record_path)
        pending.unlink(missing_ok=True)
        self.ran.append(name)
        self.log(f"{name}: done in {record['seconds']:.0f} s")
        return record


def run_pipeline(
    cfg: RunConfig, run_dir: Path, *, force: list[str] = (), log: Callable[[str], None] = print,
    train_report: Callable[[str], Callable[[dict], None] | None] = lambda stage: None,
) -> Runner:
    """Run (or resume) every stage of a benchmark run into `run_dir`, then write the report."""
    from medforget.evaluate.run import DEFAULT_SPLITS, evaluate_model, write_results
    from medforget.methods.registry import get_method, param_defaults
    from medforget.methods.unlearn import unlearn
    from medforget.train.config import stage_config, vision_config
    from medforget.train.stages import init_model, run_stage
    from medforget.world.build import generate
    from medforget.world.config import preset_config

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "run.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=True))
    runner = Runner(run_dir, list(force), log)
    bench = run_dir / "bench"
    models = run_dir / "models"
    seconds: dict[str, float] = {}

    runner.stage("generate", {"preset": cfg.preset, "seed": cfg.seed, "forget_ratio": cfg.forget_ratio}, [bench],
                 lambda fresh: {"hash": generate(preset_config(cfg.preset), cfg.seed, cfg.forget_ratio, bench, overwrite=True)["content_hash"]})

    def training(stage: str, split: str, source: str | Path, out: Path, exclude: list[str], warmup: bool = False):
        train_cfg = stage_config(cfg.preset, stage)
        vision = vision_config(cfg.preset) if warmup else None

        def fn(fresh: bool) -> dict:
            result = run_stage(source, bench, out, split, train_cfg, exclude=exclude, overwrite=fresh,
                               report=train_report(stage), vision_warmup=vision)
            return {"steps": result.steps, "train_seconds": round(result.seconds, 1)}

        return train_cfg, vision, fn

    if cfg.model:
        start = cfg.model
        start_key = {"model": cfg.model}
    else:
        runner.stage("init", {"bench": runner.keys["generate"], "size": cfg.model_size, "seed": cfg.seed}, [models / "base"],
                     lambda fresh: init_model(bench, models / "base", size=cfg.model_size, seed=cfg.seed, overwrite=True) and None)
        train_cfg, vision, fn = training("pretrain", "pretrain", models / "base", models / "pretrained", [], warmup=True)
        runner.stage("pretrain", {"init": runner.keys["init"], "train": train_cfg.to_dict(), "vision": asdict(vision)},
                     [models / "pretrained"], fn)
        start, start_key = models / "pretrained", {"pretrain": runner.keys["pretrain"]}

    train_cfg, _, fn = training("finetune", "train", start, models / "vanilla", [])
    record = runner.stage("vanilla", {**start_key, "bench": runner.keys["generate"], "train": train_cfg.to_dict()}, [models / "vanilla"], fn)
    seconds["vanilla"] = record["seconds"]
    excluded = ORACLE_EXCLUDES[cfg.scenario]
    train_cfg, _, fn = training("finetune", "train", start, models / "oracle", excluded)
    record = runner.stage("oracle", {**start_key, "bench": runner.keys["generate"], "train": train_cfg.to_dict(), "exclude": excluded},
                          [models / "oracle"], fn)
    seconds["oracle"] = record["seconds"]

    for method in cfg.methods:
        settings = cfg.method_settings.get(method, [])
        out = models / method

        def fn(fresh: bool, method: str = method, settings: list[str] = settings, out: Path = out) -> dict:
            return unlearn(models / "vanilla", bench, method, cfg.scenario, out, settings, train_report(method), overwrite=fresh)

        impl = get_method(method)  # its defaults are part of the key, so changing a default re-runs the method
        defaults = {"params": param_defaults(impl), "train": impl.train_defaults.to_dict() if impl.train_defaults else None}
        record = runner.stage(f"unlearn:{method}", {"vanilla": runner.keys["vanilla"], "scenario": cfg.scenario,
                                                    "settings": settings, "defaults": defaults}, [out], fn)
        seconds[method] = record["seconds"]

    # "base" is the pretrained model: it reads scans but has seen no patient (the reference for chance level).
    sources = {"vanilla": "vanilla", "oracle": "oracle", **{m: f"unlearn:{m}" for m in cfg.methods}}
    folders = {"base": models / "pretrained"} if not cfg.model else {}
    if not cfg.model:
        sources = {"base": "pretrain", **sources}
    evaluated = list(sources)
    for name in evaluated:
        out = run_dir / "eval" / f"{name}.json"
        folder = folders.get(name, models / name)

        def fn(fresh: bool, folder: Path = folder, out: Path = out) -> dict:
            metrics, records = evaluate_model(folder, bench, DEFAULT_SPLITS, limit=cfg.eval_limit, full=FULL_SPLITS)
            write_results(metrics, records, out)
            return {"eval_seconds": metrics["seconds"]}

        runner.stage(f"eval:{name}", {"model": runner.keys[sources[name]], "limit": cfg.eval_limit, "full": FULL_SPLITS},
                     [out, out.with_suffix(".parquet")], fn)

    run_info = {
        "name": run_dir.name, "preset": cfg.preset, "seed": cfg.seed, "scenario": cfg.scenario, "methods": cfg.methods,
        "models": {
            name: {"kind": name if name in ("base", "vanilla", "oracle") else "method", "method": name if name in cfg.methods else None,
                   "seconds": seconds.get(name), "path": str(folders.get(name, models / name))}
            for name in evaluated
        },
    }
    (run_dir / "run.json").write_text(json.dumps(run_info, indent=2) + "\n")
    def report(fresh: bool) -> dict:
        from medforget.report import build_report

        return {k: str(v) for k, v in build_report(run_dir).items()}

    runner.stage("report", {"evals": {n: runner.keys[f"eval:{n}"] for n in evaluated}},
                 [run_dir / "report.html", run_dir / "leaderboard.md", run_dir / "results.json"], report)
    return runner

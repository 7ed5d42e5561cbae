"""The protection frontier (issue 19): `run_protect_eval` over identity cues x budgets x methods x protectors.

For each run folder (one world: its benchmark and its attacker's starting model), each budget eps and each
protection method, the protection is optimised twice: on the attacker's own tower (`white-box`) and on
surrogate towers the attacker never uses (`transfer`: `protect/surrogate.py`, one tower or an ensemble);
the attacker fine-tunes its own copy of the starting model in both. Every cell is one `protect-eval`
(its JSON and table kept under `cells/`); the conditions that do not depend on the protection (`none`,
`blank`) are fine-tuned once per world and reused. The result is one row per cell: the protection's measured
PSNR and SSIM, the unprotected and protected leak on clean scans with their 95 % intervals, the leak after
JPEG 75 and under the worst post-processing, and a leak-against-PSNR plot.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from medforget.errors import MedforgetError
from medforget.models.loading import check_model_folder
from medforget.protect.attacks import METHODS, eps_pixels
from medforget.protect.protocol import Progress, ProtectEvalConfig, eps_text, run_protect_eval
from medforget.protect.surrogate import SURROGATE_FILE, build_surrogate, surrogate_warmup
from medforget.protect.transforms import TRANSFORMS
from medforget.world.storage import write_atomically

FRONTIER_JSON, FRONTIER_TABLE, FRONTIER_PLOT = "frontier.json", "frontier.md", "frontier.png"
SURROGATES_SUFFIX = ".surrogates"  # the default surrogates folder: <out>.surrogates
WHITE_BOX, TRANSFER = "white-box", "transfer"
PROTECTORS = (WHITE_BOX, TRANSFER)
DEFAULT_EPS = (2 / 255, 4 / 255, 8 / 255, 16 / 255)
# The issue's target, read at this budget: protected leak <= HOLD x unprotected (white-box and transfer) and
# <= AFTER_JPEG x unprotected after JPEG 75.
TARGET_EPS, TARGET_HOLD, TARGET_JPEG, TARGET_TRANSFORM = 8 / 255, 0.5, 0.7, "jpeg75"


@dataclass(frozen=True)
class FrontierConfig:
    """The grid and each cell's protect-eval settings. Each cell takes `steps` steps of `step_fraction` x eps
    from a zero start (L2 steps under the PSNR floor, sign steps without one), so every budget can be spent."""

    eps: tuple[float, ...] = DEFAULT_EPS
    methods: tuple[str, ...] = ("targeted",)
    protectors: tuple[str, ...] = PROTECTORS
    steps: int = 10
    step_fraction: float = 0.1
    min_psnr: float | None = 35.0
    transforms: tuple[str, ...] = tuple(TRANSFORMS)
    surrogates: int = 1  # towers for the transfer column (seeds 1..k; more than one: an ensemble)
    surrogate_epochs: int | None = None  # warm-up epochs of each surrogate; None: the preset's
    patients: str = "holdout"
    max_patients: int | None = None
    epochs: float | None = None
    max_steps: int | None = None
    seed: int = 0
    blank: bool = True

    def cell(self, method: str, eps: float) -> ProtectEvalConfig:
        return ProtectEvalConfig(
            method=method, eps=eps, steps=self.steps, step_size=eps * self.step_fraction, random_start=False,
            min_psnr=self.min_psnr, transforms=self.transforms, patients=self.patients, max_patients=self.max_patients,
            epochs=self.epochs, max_steps=self.max_steps, seed=self.seed, blank=self.blank,
        )

    def check(self) -> None:
        """Every user mistake, before anything is loaded."""
        if not self.eps or len(set(self.eps)) != len(self.eps):
            raise MedforgetError("give at least one budget, each once")
        if not self.methods or set(self.methods) - set(METHODS) or len(set(self.methods)) != len(self.methods):
            raise MedforgetError(f"methods must be distinct, among: {', '.join(METHODS)}")
        if not self.protectors or set(self.protectors) - set(PROTECTORS) or len(set(self.protectors)) != len(self.protectors):
            raise MedforgetError(f"protectors must be distinct, among: {', '.join(PROTECTORS)}")
        if not 0 < self.step_fraction <= 1:
            raise MedforgetError(f"step fraction must be in (0, 1], got {self.step_fraction}")
        if self.surrogates < 1:
            raise MedforgetError(f"surrogates must be >= 1, got {self.surrogates}")
        if self.surrogate_epochs is not None and self.surrogate_epochs < 1:
            raise MedforgetError(f"surrogate warm-up epochs must be >= 1, got {self.surrogate_epochs}")
        for method in self.methods:
            for eps in self.eps:
                self.cell(method, eps).check()


@dataclass
class World:
    """One run folder: its benchmark, the attacker's starting model and a label for the table."""

    run_dir: Path
    bench: Path
    model: Path
    label: str
    identity_cue: str
    surrogates: list[Path] = field(default_factory=list)


def worlds(run_dirs: Sequence[str | Path], start: str) -> list[World]:
    """Check each run folder (bench/ and models/<start>) and label it `<folder name>`; labels must differ."""
    if not run_dirs:
        raise MedforgetError("give at least one run folder")
    out = []
    for run in map(Path, run_dirs):
        bench, model = run / "bench", run / "models" / start
        if not (bench / "benchmark.json").is_file():
            raise MedforgetError(f"{run}: no benchmark (bench/benchmark.json); expected a `medforget run` folder")
        check_model_folder(model)
        meta = json.loads((bench / "benchmark.json").read_text())
        out.append(World(run, bench, model, run.name, meta.get("identity_cue", "marker")))
    labels = [w.label for w in out]
    if len(set(labels)) != len(labels):
        raise MedforgetError(f"two run folders share a name ({', '.join(labels)}): each labels its rows")
    return out


def _surrogate_plan(world: World, folder: Path, cfg: FrontierConfig) -> list[tuple[int, Path, dict | None]]:
    """Seeds 1..k under `folder`, each with its record when already built for this benchmark with these
    settings (None: to build); a surrogate built otherwise is an error, raised before anything is loaded."""
    meta = json.loads((world.bench / "benchmark.json").read_text())
    plan = []
    for seed in range(1, cfg.surrogates + 1):
        path = folder / f"seed{seed}"
        record = None
        if (path / SURROGATE_FILE).is_file():
            record = json.loads((path / SURROGATE_FILE).read_text())
            want = asdict(surrogate_warmup(meta["preset"], seed, cfg.surrogate_epochs))
            if record.get("benchmark_hash") != meta["content_hash"] or record.get("warmup") != want:
                raise MedforgetError(f"{path}: a surrogate built for another benchmark or warm-up; remove it or "
                                     "choose another surrogates folder")
        plan.append((seed, path, record))
    return plan


def _surrogates(world: World, plan: list[tuple[int, Path, dict | None]], cfg: FrontierConfig,
                tick: Progress) -> tuple[list[Path], list[dict]]:
    """The planned surrogates: reused, or built now."""
    paths, records = [], []
    for seed, path, record in plan:
        if record is not None:
            record = {**record, "reused": True}
        else:
            tick(f"surrogate {world.label} seed {seed}", 0, 1)
            record = {**build_surrogate(world.bench, path, seed, epochs=cfg.surrogate_epochs), "reused": False}
            tick(f"surrogate {world.label} seed {seed}", 1, 1)
        paths.append(path)
        records.append(record)
    return paths, records


def frontier_row(world: World, method: str, eps: float, protector: str, document: dict, cell: str) -> dict:
    """One table row from one cell's protect-eval document (aggregates only)."""
    conditions, summary = document["conditions"], document["summary"]
    quality = conditions["protected"]["quality"]
    post = summary["post_processing"] or {}
    jpeg = conditions.get(f"protected+{TARGET_TRANSFORM}")
    return {
        "world": world.label, "identity_cue": world.identity_cue, "method": method, "eps": eps,
        "eps_pixels": eps_pixels(eps), "protector": protector, "encoders": document["settings"]["encoders"],
        "psnr_mean": quality["psnr_mean"], "psnr_min": quality["psnr_min"], "ssim_mean": quality["ssim_mean"],
        "ssim_min": quality["ssim_min"], "linf_max": quality["linf_max"],
        "unprotected_leak": summary["unprotected_leak"], "unprotected_ci": conditions["none"].get("leak_ci"),
        "protected_leak": summary["protected_leak"], "protected_ci": conditions["protected"].get("leak_ci"),
        "protected_ratio": summary["protected_leak_ratio"], "holds": summary["protected_holds"],
        "jpeg75_leak": jpeg["leak_exact"] if jpeg else None, "jpeg75_ratio": jpeg["leak_ratio"] if jpeg else None,
        "worst_post": post.get("worst"), "worst_leak": post.get("worst_leak"), "worst_ratio": post.get("worst_leak_ratio"),
        "floor_leak": summary["floor_leak"], "n_generated": document["items"]["test_generated"],
        "patients": document["items"]["patients"], "cell": cell,
    }


class ReuseFile(dict):
    """`run_protect_eval`'s `reuse` dict kept in a JSON file, rewritten (atomically) after every new attack, so an
    interrupted or extended frontier does not fine-tune again on training images it already fine-tuned on. Its
    keys hold everything that decides an attack (benchmark hash, starting model and its weight files, fine-tuning,
    items, training images) but not the code: delete the file after changing the training or evaluation code."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            super().__init__(json.loads(path.read_text()) if path.is_file() else {})
        except json.JSONDecodeError as err:
            raise MedforgetError(f"{path}: not a reuse file ({err}); remove it") from None

    def __setitem__(self, key: str, value: dict) -> None:
        super().__setitem__(key, value)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(dict(self)) + "\n")
        tmp.replace(self.path)


def run_frontier(
    run_dirs: Sequence[str | Path], out_dir: str | Path, cfg: FrontierConfig = FrontierConfig(), *, start: str = "vanilla",
    surrogates_dir: str | Path | None = None, reuse_file: str | Path | None = None, overwrite: bool = False,
    progress: Progress | None = None,
) -> dict:
    """Every cell, then `frontier.json`, `frontier.md` and `frontier.png` in `out_dir` (written atomically, with
    each cell's protect-eval under `cells/`). Surrogates are built under `surrogates_dir/<run name>/seed<k>`
    (reused there when already built for the same benchmark and warm-up), by default `<out_dir>.surrogates`
    beside the output, so that a rerun does not warm them up again. With `reuse_file` (see `ReuseFile`), attacks
    are also kept across calls."""
    began = time.perf_counter()
    cfg.check()
    out = Path(out_dir)
    found = worlds(run_dirs, start)
    if out.exists() and not out.is_dir():
        raise MedforgetError(f"output {out} is a file, not a folder")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise MedforgetError(f"output folder {out} exists and is not empty; pass --overwrite to replace it")
    if any(out.resolve() == w.run_dir.resolve() for w in found):
        raise MedforgetError(f"output folder {out} is one of the run folders; choose another one")
    plans = {w.label: _surrogate_plan(w, Path(surrogates_dir or out.with_name(out.name + SURROGATES_SUFFIX)) / w.label, cfg)
             for w in found} if TRANSFER in cfg.protectors else {}
    tick = progress or (lambda what, done, total: None)
    kept = ReuseFile(Path(reuse_file)) if reuse_file is not None else None
    document: dict = {}

    def fill(tmp: Path) -> None:
        rows, built = [], {}
        for world in found:
            if world.label in plans:
                world.surrogates, built[world.label] = _surrogates(world, plans[world.label], cfg, tick)
            reuse = kept if kept is not None else {}  # `none` and `blank` are fine-tuned once per world
            for method in cfg.methods:
                for eps in cfg.eps:
                    for protector in cfg.protectors:
                        cell = f"cells/{world.label}/{method}-eps{eps_pixels(eps)}-{protector}"
                        encoders = world.surrogates if protector == TRANSFER else ()
                        result = run_protect_eval(
                            world.bench, world.model, tmp / cell, cfg.cell(method, eps), encoders=encoders, reuse=reuse,
                            progress=lambda what, done, total, c=cell: tick(f"{c}: {what}", done, total))
                        rows.append(frontier_row(world, method, eps, protector, result, cell))
        document.update({
            "settings": {"runs": [str(w.run_dir) for w in found], "start": start, **asdict(cfg),
                         "eps": list(cfg.eps), "methods": list(cfg.methods), "protectors": list(cfg.protectors),
                         "transforms": list(cfg.transforms)},
            "surrogates": built, "rows": rows, "targets": targets(rows),
            "seconds": round(time.perf_counter() - began, 1),
        })
        (tmp / FRONTIER_JSON).write_text(json.dumps(document, indent=2) + "\n")
        (tmp / FRONTIER_TABLE).write_text(frontier_table(document) + "\n")
        frontier_plot(rows, tmp / FRONTIER_PLOT)

    write_atomically(out, fill, overwrite)
    return document


def targets(rows: list[dict]) -> list[dict]:
    """The issue's target at eps 8/255, per world and method: white-box and transfer leak ratio <= 0.5, and
    <= 0.7 after JPEG 75, with the protection at least 35 dB PSNR (its minimum over the scans)."""
    out = []
    for row in rows:
        if eps_pixels(row["eps"]) != eps_pixels(TARGET_EPS):
            continue
        ratio, jpeg = row["protected_ratio"], row["jpeg75_ratio"]
        out.append({
            "world": row["world"], "method": row["method"], "protector": row["protector"],
            "psnr_ok": row["psnr_min"] is not None and row["psnr_min"] >= 35.0,
            "holds": None if ratio is None else ratio <= TARGET_HOLD,
            "jpeg75_holds": None if jpeg is None else jpeg <= TARGET_JPEG,
        })
    return out


def _f(value: float | None, spec: str = ".3f") -> str:
    return "–" if value is None else format(value, spec)


def _ci(leak: float | None, ci: list[float] | None) -> str:
    return _f(leak) + ("" if not ci else f" [{ci[0]:.2f}, {ci[1]:.2f}]")


def frontier_table(document: dict) -> str:
    """The printed table (aggregates only: no private value, no model answer)."""
    s, rows = document["settings"], document["rows"]
    floor = "no PSNR floor" if s["min_psnr"] is None else f"PSNR floor {s['min_psnr']:g} dB"
    lines = [
        f"# protection frontier: {', '.join(s['methods'])}; {s['steps']} zero-start steps of {s['step_fraction']:g} x eps "
        f"({floor}); attacker `models/{s['start']}` fine-tuned on the {s['patients']} patients' scans",
        "",
        "| world (cue) | method | eps | protector | PSNR mean / min | SSIM mean | leak unprotected [95 % CI] "
        "| leak protected [95 % CI] | / unprotected | after jpeg75 / unprotected | worst post-processing (/ unprotected) | holds |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---|:---:|",
    ]
    for r in rows:
        worst = "–" if r["worst_post"] is None else f"{r['worst_post']} {_f(r['worst_leak'])} ({_f(r['worst_ratio'], '.2f')})"
        holds = {True: "yes", False: "**no**", None: "–"}[r["holds"]]
        lines.append(
            f"| {r['world']} ({r['identity_cue']}) | {r['method']} | {eps_text(r['eps'])} | {r['protector']} | "
            f"{_f(r['psnr_mean'], '.1f')} / {_f(r['psnr_min'], '.1f')} | {_f(r['ssim_mean'])} | "
            f"{_ci(r['unprotected_leak'], r['unprotected_ci'])} | {_ci(r['protected_leak'], r['protected_ci'])} | "
            f"{_f(r['protected_ratio'], '.2f')} | {_f(r['jpeg75_ratio'], '.2f')} | {worst} | {holds} |"
        )
    worlds_seen = {r["world"]: r for r in rows}
    lines.append("")
    for label, r in worlds_seen.items():
        lines.append(f"- {label}: {r['patients']} patients, {r['n_generated']} generated items on clean test scans; "
                     f"blank-scan floor {_f(r['floor_leak'])}.")
    for label, records in document["surrogates"].items():
        for rec in records:
            lines.append(f"- {label} surrogate seed {rec['seed']}: warm-up {rec['warmup']['epochs']} epochs, "
                         f"{rec['seconds']:g} s{' (reused)' if rec.get('reused') else ''}; nearest-neighbour same patient "
                         f"on general scans {_f(rec['result'].get('nn_same_patient'))}.")
    for t in document["targets"]:
        verdict = {True: "yes", False: "no", None: "–"}
        lines.append(f"- target at eps 8/255 ({t['world']}, {t['method']}, {t['protector']}): PSNR min >= 35 dB "
                     f"{verdict[t['psnr_ok']]}, leak <= {TARGET_HOLD:g} x unprotected {verdict[t['holds']]}, after jpeg75 "
                     f"<= {TARGET_JPEG:g} x {verdict[t['jpeg75_holds']]}.")
    lines += ["", "Leak: share of generated answers (open, cloze) on clean test scans holding the patient's value "
              "exactly; 95 % intervals: patient-cluster bootstrap. PSNR, SSIM: the protected training scans against "
              "clean. holds: protected leak at most 0.5 x unprotected. white-box: optimised on the attacker's own "
              "tower; transfer: on surrogate towers it never uses (seeds listed above)."]
    return "\n".join(lines)


def frontier_plot(rows: list[dict], path: Path) -> None:
    """Leak / unprotected against PSNR: one line per world, method and protector over the budgets (filled:
    protected; hollow, dashed: the worst post-processing), with the issue's 0.5 and 0.7 lines."""
    fig = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    series: dict[tuple, list[dict]] = {}
    for r in rows:
        series.setdefault((r["world"], r["identity_cue"], r["method"], r["protector"]), []).append(r)
    drawn = False
    colors = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
    for k, ((world, cue, method, protector), points) in enumerate(series.items()):
        points = [p for p in points if p["psnr_mean"] is not None and p["protected_ratio"] is not None]
        points.sort(key=lambda p: p["psnr_mean"])
        if not points:
            continue
        drawn = True
        color = colors[k % len(colors)]
        xs = [p["psnr_mean"] for p in points]
        ax.plot(xs, [p["protected_ratio"] for p in points], "o-", color=color, label=f"{world} ({cue}), {method}, {protector}")
        worst = [(x, p["worst_ratio"]) for x, p in zip(xs, points) if p["worst_ratio"] is not None]
        if worst:
            ax.plot(*zip(*worst), "o--", color=color, markerfacecolor="none")
    ax.axhline(TARGET_HOLD, color="#555555", lw=0.8, ls=":")
    ax.axhline(TARGET_JPEG, color="#999999", lw=0.8, ls=":")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("PSNR of the protected training scans (dB, mean)")
    ax.set_ylabel("leak on clean scans / unprotected leak")
    ax.set_title("protection frontier (hollow, dashed: worst post-processing)", fontsize=10)
    if drawn:
        ax.legend(fontsize=7, loc="best")
    else:
        ax.text(0.5, 0.5, "no leak without protection: nothing to compare", ha="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100, metadata={"Software": None})

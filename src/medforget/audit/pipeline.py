"""`run --data DIR --model M`: audit -> unlearn with each method -> audit again -> summary, on the user's data.

The stages go through the synthetic run's `Runner`, so a run is cached and resumed the same way: a stage
whose inputs (the data's content hash, the model, the method's settings and defaults) are unchanged is
skipped, an interrupted one resumes, and `--force unlearn|eval|report` redoes a stage group and what
follows it (the audits are this run's evaluation stages)."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from pathlib import Path

from medforget.audit.page import JSON_FILE, write_audit
from medforget.world.storage import read_meta, write_atomically

SUMMARY_JSON, SUMMARY_MD = "summary.json", "summary.md"
SUMMARY_KEYS = (("forget leak", "forget", "leak_exact"), ("sibling leak", "siblings", "leak_exact"),
                ("non-member leak", "nonmembers", "leak_exact"), ("forget refusal", "forget", "refusal_rate"))


def _audit_job(fresh: bool, model: str, data: Path, out: Path, report=None) -> dict:
    from medforget.audit.score import run_audit

    result = run_audit(model, data)
    write_audit(result, out, overwrite=True)
    return {"seconds": result["seconds"]}


def _unlearn_job(fresh: bool, model: str, data: Path, method: str, out: Path, settings: list[str], report=None) -> dict:
    from medforget.methods.unlearn import unlearn

    record = unlearn(model, data, method, "privacy", out, settings, report, overwrite=fresh)
    return {"steps": record["steps"], "seconds": record["seconds"]}


def summarise(run_dir: Path, names: list[str]) -> dict:
    """Each model's headline figures side by side, with the oracle-free criterion (AUROC, target 0.5)."""
    rows = []
    for name in names:
        audit = json.loads((run_dir / "audits" / name / JSON_FILE).read_text())
        row = {"model": name, "auroc": audit["criterion"]["auroc"]}
        row.update({label: audit["groups"][group][key] for label, group, key in SUMMARY_KEYS})
        rows.append(row)
    return {"rows": rows, "target_auroc": 0.5}


def _summary_job(fresh: bool, run_dir: Path, names: list[str], report=None) -> dict:
    summary = summarise(run_dir, names)
    columns = ["model", *(label for label, _, _ in SUMMARY_KEYS), "auroc"]
    fmt = lambda v: "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    table = "\n".join(["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
                      + ["| " + " | ".join(fmt(r[c]) for c in columns) + " |" for r in summary["rows"]])

    def fill(tmp: Path) -> None:
        (tmp / SUMMARY_JSON).write_text(json.dumps(summary, indent=2) + "\n")
        (tmp / SUMMARY_MD).write_text(f"# Audit before and after unlearning\n\nAUROC: forgotten vs non-members (target 0.5).\n\n{table}\n")

    write_atomically(run_dir / "summary", fill, overwrite=True)
    return {"models": len(names)}


def run_on_data(data: Path, model: str, methods: list[str], run_dir: Path, *, settings: list[str] = (), force: list[str] = (),
                workers: int = 1, log: Callable[[str], None] = print,
                train_report: Callable[[str], Callable[[dict], None] | None] = lambda stage: None):
    """Run (or resume) the stages into `run_dir`; return the Runner (what ran, what was up to date)."""
    from medforget.methods.registry import get_method, param_defaults
    from medforget.pipeline import Runner

    run_dir, data = Path(run_dir), Path(data)
    run_dir.mkdir(parents=True, exist_ok=True)
    runner = Runner(run_dir, list(force), log)
    data_hash = read_meta(data)["content_hash"]
    base = {"data": data_hash, "model": str(model)}
    names = ["vanilla"]
    runner.add("eval:vanilla", base, [run_dir / "audits" / "vanilla"],
               partial(_audit_job, model=str(model), data=data, out=run_dir / "audits" / "vanilla"))
    for method in methods:
        impl = get_method(method)
        defaults = {"params": param_defaults(impl), "train": impl.train_defaults.to_dict() if impl.train_defaults else None}
        out = run_dir / "models" / method
        runner.add(f"unlearn:{method}", {**base, "method": method, "settings": list(settings), "defaults": defaults}, [out],
                   partial(_unlearn_job, model=str(model), data=data, method=method, out=out, settings=list(settings)))
        runner.add(f"eval:{method}", {"model": runner.keys[f"unlearn:{method}"]}, [run_dir / "audits" / method],
                   partial(_audit_job, model=str(out), data=data, out=run_dir / "audits" / method), after=[f"unlearn:{method}"])
        names.append(method)
    audits = [f"eval:{n}" for n in names]
    runner.add("report", {"audits": {a: runner.keys[a] for a in audits}}, [run_dir / "summary"],
               partial(_summary_job, run_dir=run_dir, names=names), after=audits, heavy=False)
    runner.execute(workers, train_report)
    return runner

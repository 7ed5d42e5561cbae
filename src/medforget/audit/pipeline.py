"""`run --data DIR --model M`: audit -> unlearn with each method -> audit again -> summary, on the user's data.

The stages go through the synthetic run's `Runner`, so a run is cached and resumed the same way: a stage
whose inputs (the data's content hash, the model, the method's settings and defaults) are unchanged is
skipped, an interrupted one resumes, and `--force unlearn|eval|report` redoes a stage group and what
follows it (the audits are this run's evaluation stages). The report stage writes summary/summary.json,
summary.md and report.html (audit/report.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from pathlib import Path

from medforget.audit.page import JSON_FILE, SCORES_FILE, write_audit
from medforget.world.storage import read_meta, write_atomically

SUMMARY_JSON, SUMMARY_MD = "summary.json", "summary.md"
SUMMARY_KEYS = (("forget leak", "forget", "leak_exact"), ("sibling leak", "siblings", "leak_exact"),
                ("non-member leak", "nonmembers", "leak_exact"), ("forget refusal", "forget", "refusal_rate"))


def _audit_job(fresh: bool, model: str, data: Path, out: Path, report=None) -> dict:
    from medforget.audit.score import item_scores, score_groups, summarise

    scored = score_groups(model, data)
    result = summarise(scored)
    write_audit(result, out, overwrite=True, scores=item_scores(scored))
    return {"seconds": result["seconds"]}


def _unlearn_job(fresh: bool, model: str, data: Path, method: str, out: Path, settings: list[str], report=None) -> dict:
    from medforget.methods.unlearn import unlearn

    record = unlearn(model, data, method, "privacy", out, settings, report, overwrite=fresh)
    return {"steps": record["steps"], "seconds": record["seconds"]}


ORACLE = "oracle"
ORACLE_KEYS = ("forget quality", "PrivLeak", "leak gap", "refusal gap")
NO_ORACLE = "no oracle: pass --oracle DIR (a model retrained without the forget request); the AUROC criterion stands in for it"


def _forget_truth_ratios(run_dir: Path, name: str) -> list[float]:
    import pyarrow.parquet as pq

    path = run_dir / "audits" / name / SCORES_FILE
    rows = pq.read_table(path).to_pylist() if path.is_file() else []
    return [r["truth_ratio"] for r in rows if r["group"] == "forget" and r["task"] == "mcq" and r["truth_ratio"] is not None]


def against_oracle(run_dir: Path, name: str, audit: dict, oracle: dict) -> tuple[dict, dict[str, str]]:
    """The synthetic run's comparison figures against the retrained oracle's audit: forget quality (KS p-value of
    the forget request's MCQ truth ratios), PrivLeak (Min-K%++), and the forget leak and refusal gaps; with the
    reason for each one that cannot be computed."""
    from medforget.evaluate.metrics.forget_quality import forget_quality
    from medforget.evaluate.metrics.mia import privleak

    out, absent = {}, {}
    mine, theirs = _forget_truth_ratios(run_dir, name), _forget_truth_ratios(run_dir, ORACLE)
    out["forget quality"] = forget_quality(mine, theirs) if mine and theirs else None
    if out["forget quality"] is None:
        absent["forget quality"] = "no multiple-choice item in the forget request (truth ratios come from MCQ options)"
    a, b = audit["criterion"]["auroc"], oracle["criterion"]["auroc"]
    out["PrivLeak"] = privleak(a, b) if a is not None and b else None
    if out["PrivLeak"] is None:
        absent["PrivLeak"] = "no membership AUROC of the model or the oracle (import with --nonmembers)"
    for label, key in (("leak gap", "leak_exact"), ("refusal gap", "refusal_rate")):
        x, y = audit["groups"]["forget"][key], oracle["groups"]["forget"][key]
        out[label] = None if x is None or y is None else x - y
        if out[label] is None:
            absent[label] = "no private open or cloze item in the forget request"
    return out, absent


def summarise(run_dir: Path, names: list[str], oracle: bool = False) -> dict:
    """Each model's headline figures side by side, with the oracle-free criterion (AUROC, target 0.5) and,
    with an oracle, the comparison figures against it (absent ones with their reason, never 0)."""
    rows, absent = [], {}
    reference = json.loads((run_dir / "audits" / ORACLE / JSON_FILE).read_text()) if oracle else None
    for name in names:
        audit = json.loads((run_dir / "audits" / name / JSON_FILE).read_text())
        row = {"model": name, "auroc": audit["criterion"]["auroc"]}
        row.update({label: audit["groups"][group][key] for label, group, key in SUMMARY_KEYS})
        reasons = {label: audit["absent"].get(f"{group}.{key}", "no item to compute it on") for label, group, key in SUMMARY_KEYS}
        reasons["auroc"] = audit["absent"].get("membership", "no membership score")
        absent.update({f"{name}: {k}": why for k, why in reasons.items() if row[k] is None})
        if reference is not None:
            figures, missing = against_oracle(run_dir, name, audit, reference)
            row.update(figures)
            absent.update({f"{name}: {k}": why for k, why in missing.items()})
        rows.append(row)
    if reference is None:
        absent["oracle comparison"] = NO_ORACLE
    return {"rows": rows, "target_auroc": 0.5, "oracle": ORACLE if oracle else None, "absent": absent}


def figure(column: str, value) -> str:
    """A summary cell: a p-value in significant digits (tiny ones matter), a rate to 3 decimals, absent as '-'."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2g}" if column == "forget quality" else f"{value:.3f}"
    return str(value)


def _summary_job(fresh: bool, run_dir: Path, names: list[str], model: str, data: Path, oracle: str | None = None,
                 report=None) -> dict:
    from medforget.audit.report import REPORT_FILE, render_report

    summary = summarise(run_dir, names, oracle is not None)
    columns = ["model", *(label for label, _, _ in SUMMARY_KEYS), "auroc", *(ORACLE_KEYS if oracle is not None else ())]
    request = json.loads((run_dir / "audits" / names[0] / JSON_FILE).read_text())["request"]
    page = render_report(summary, columns, str(data), str(model), request, oracle, figure)
    table = "\n".join(["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
                      + ["| " + " | ".join(figure(c, r[c]) for c in columns) + " |" for r in summary["rows"]])

    def fill(tmp: Path) -> None:
        (tmp / SUMMARY_JSON).write_text(json.dumps(summary, indent=2) + "\n")
        notes = "".join(f"- {k}: {why}\n" for k, why in summary["absent"].items())
        (tmp / SUMMARY_MD).write_text(f"# Audit before and after unlearning\n\nAUROC: forgotten vs non-members (target 0.5).\n\n"
                                      f"{table}\n" + (f"\nAbsent figures:\n\n{notes}" if notes else ""))
        (tmp / REPORT_FILE).write_text(page)

    write_atomically(run_dir / "summary", fill, overwrite=True)
    return {"models": len(names)}


def run_on_data(data: Path, model: str, methods: list[str], run_dir: Path, *, settings: list[str] = (), force: list[str] = (),
                workers: int = 1, oracle: str | None = None, log: Callable[[str], None] = print,
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
    if oracle is not None:  # the user's retrained model: audited like the others, then the target of the comparison
        runner.add(f"eval:{ORACLE}", {"data": data_hash, "model": str(oracle)}, [run_dir / "audits" / ORACLE],
                   partial(_audit_job, model=str(oracle), data=data, out=run_dir / "audits" / ORACLE))
    needed = [*audits, *([f"eval:{ORACLE}"] if oracle is not None else [])]
    runner.add("report", {"audits": {a: runner.keys[a] for a in needed}}, [run_dir / "summary"],
               partial(_summary_job, run_dir=run_dir, names=names, model=str(model), data=data, oracle=oracle), after=needed, heavy=False)
    runner.execute(workers, train_report)
    return runner

"""The leaderboard: one row per model, its columns defined once for results.json, Markdown and HTML.

Each column carries its legend so every output explains the same numbers the same way, and a format
kind so an accuracy, a signed gap, a p-value and a duration each read naturally.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from medforget.report.rundir import Run


@dataclass(frozen=True)
class Column:
    """`kind` picks the number format: text, acc (0..1), gap (signed), pvalue, seconds."""

    key: str
    header: str
    legend: str
    kind: str = "acc"


COLUMNS: tuple[Column, ...] = (
    Column("model", "model", "the model and its role: base (before fine-tuning), vanilla (fine-tuned on everything, "
           "the starting point), oracle (retrained without the forget set, the target), or an unlearning method", "text"),
    Column("forget", "forget", "MCQ accuracy on the forgotten patients' record questions (forget_privacy); "
           "lower means more forgotten, the oracle's value is the target"),
    Column("test_forget", "test forget", "MCQ accuracy on the forgotten facts asked with unseen paraphrases "
           "and unseen scans (test_forget): does forgetting generalise?"),
    Column("retain", "retain", "MCQ accuracy on the kept patients and knowledge (retain); higher is better"),
    Column("test_retain", "test retain", "MCQ accuracy on the kept facts with unseen paraphrases and scans (test_retain)"),
    Column("general", "general", "MCQ accuracy on image understanding of never fine-tuned patients (general)"),
    Column("leak", "leak", "share of generated answers about forgotten patients that state the private value "
           "verbatim (forget_privacy, exact leak rate); 0 is ideal"),
    Column("mia_auroc", "MIA AUROC", "AUROC of the Min-K%++ membership attack telling forgotten patients' answers "
           "from never-seen patients' (holdout); 0.5 cannot tell them apart; match the oracle"),
    Column("forget_quality", "forget quality", "p-value of the KS test between the model's and the oracle's "
           "truth ratios on forget_privacy MCQs; near 1 looks like the oracle, tiny values do not", "pvalue"),
    Column("ues_privacy", "UES privacy", "Unlearning Efficiency Score on the privacy scenario: harmonic mean of "
           "forgetting (closeness to the oracle on forget splits) and utility (kept accuracy relative to vanilla)"),
    Column("ues_incorrect", "UES incorrect", "Unlearning Efficiency Score on the incorrect-knowledge scenario "
           "(forget_incorrect and its paraphrases)"),
    Column("refusal_forget", "forget refusal", "share of generated answers about forgotten patients that refuse"),
    Column("refusal_forget_gap", "forget refusal gap", "refusal on forget_privacy minus the oracle's: how much more the "
           "model refuses about forgotten patients than a model that never saw them", "gap"),
    Column("refusal_test_forget", "test forget refusal", "share of generated answers about forgotten patients, asked "
           "with unseen paraphrases and scans (test_forget), that refuse"),
    Column("refusal_test_forget_gap", "test forget refusal gap", "refusal on test_forget minus the oracle's", "gap"),
    Column("refusal_holdout", "holdout refusal", "share of generated answers about never-seen patients that refuse"),
    Column("refusal_holdout_gap", "holdout refusal gap", "refusal on holdout minus the oracle's; refusing about forgotten "
           "patients but not about others reveals who was forgotten", "gap"),
    Column("seconds", "time", "training or unlearning time of the model (from run.json)", "seconds"),
)


def columns_for(scenario: str) -> list[Column]:
    """Every column, with only the UES of the scenarios the run unlearned."""
    wanted = {"privacy": {"ues_privacy"}, "incorrect": {"ues_incorrect"}}.get(scenario, {"ues_privacy", "ues_incorrect"})
    return [c for c in COLUMNS if not c.key.startswith("ues_") or c.key in wanted]


def _split_value(metrics: dict, split: str, key: str) -> float | None:
    return ((metrics.get("splits") or {}).get(split) or {}).get(key)


def leaderboard_rows(run: Run, comparison: dict[str, dict]) -> list[dict]:
    """One dict per model in report order; a value the run lacks is None."""
    rows = []
    for entry in run.models:
        metrics, cmp = run.metrics.get(entry.name, {}), comparison.get(entry.name, {})
        refusal = cmp.get("refusal", {})
        rates, gaps = refusal.get("rates", {}), refusal.get("oracle_gap", {})
        ues = cmp.get("ues", {})
        rows.append({
            "model": entry.name, "kind": entry.kind, "method": entry.method, "evaluated": entry.name in run.metrics,
            "forget": _split_value(metrics, "forget_privacy", "mcq_acc"),
            "test_forget": _split_value(metrics, "test_forget", "mcq_acc"),
            "retain": _split_value(metrics, "retain", "mcq_acc"),
            "test_retain": _split_value(metrics, "test_retain", "mcq_acc"),
            "general": _split_value(metrics, "general", "mcq_acc"),
            "leak": _split_value(metrics, "forget_privacy", "leak_exact"),
            "mia_auroc": ((metrics.get("membership") or {}).get("min_k_pp") or {}).get("auroc"),
            "forget_quality": cmp.get("forget_quality", {}).get("forget_privacy"),
            "ues_privacy": ues.get("privacy", {}).get("ues"),
            "ues_incorrect": ues.get("incorrect", {}).get("ues"),
            "refusal_forget": rates.get("forget_privacy"), "refusal_forget_gap": gaps.get("forget_privacy"),
            "refusal_test_forget": rates.get("test_forget"), "refusal_test_forget_gap": gaps.get("test_forget"),
            "refusal_holdout": rates.get("holdout"), "refusal_holdout_gap": gaps.get("holdout"),
            "seconds": entry.seconds,
        })
    return rows


def format_value(value: object, kind: str) -> str:
    """A cell as text; a missing or NaN value is an en dash so gaps in a run are visible, not blank."""
    if value is None:
        return "–"
    if kind == "text":
        return str(value)
    number = float(value)
    if not math.isfinite(number):
        return "–"
    if kind == "gap":
        return f"{number:+.3f}"
    if kind == "pvalue":
        return f"{number:.3f}" if number >= 1e-3 else f"{number:.1e}"
    if kind == "seconds":
        if number < 120:
            return f"{number:.0f} s"
        return f"{number / 60:.1f} min" if number < 7200 else f"{number / 3600:.1f} h"
    return f"{number:.3f}"


def cell(row: dict, column: Column) -> str:
    """The formatted cell; the model column adds its role unless the name already says it."""
    if column.key == "model" and row["kind"] != row["model"]:
        return f"{row['model']} ({row['kind']})"
    return format_value(row[column.key], column.kind)


def markdown(run: Run, rows: list[dict], columns: list[Column], notes: list[str]) -> str:
    """leaderboard.md: the table, one legend line per column, and what the run is missing."""
    name = run.info.get("name") or run.folder.name
    lines = [f"# Leaderboard: {name}", ""]
    details = [f"{k} {run.info[k]}" for k in ("preset", "seed", "scenario") if run.info.get(k) is not None]
    if details:
        lines += [", ".join(details), ""]
    lines.append("| " + " | ".join(c.header for c in columns) + " |")
    lines.append("|" + "|".join("---" if c.kind == "text" else "---:" for c in columns) + "|")
    lines += ["| " + " | ".join(cell(r, c) for c in columns) + " |" for r in rows]
    lines += ["", "## Columns", ""]
    lines += [f"- **{c.header}**: {c.legend}" for c in columns]
    if notes:
        lines += ["", "## Missing or incomplete", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def columns_json(columns: list[Column]) -> list[dict]:
    return [asdict(c) for c in columns]

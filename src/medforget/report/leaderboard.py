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


PRIVACY_COLUMNS: tuple[Column, ...] = (
    Column("forget", "forget", "MCQ accuracy on the forgotten patients' record questions (forget_privacy); "
           "lower means more forgotten, the oracle's value is the target"),
    Column("test_forget", "test forget", "MCQ accuracy on the forgotten patients' records asked with unseen paraphrases "
           "and unseen scans (privacy items of test_forget): does forgetting generalise?"),
    Column("leak", "leak", "share of generated answers about forgotten patients that state the private value "
           "verbatim (forget_privacy, exact leak rate); 0 is ideal"),
    Column("mia_auroc", "MIA AUROC", "AUROC of the Min-K%++ membership attack telling forgotten patients' answers "
           "from never-seen patients' (holdout); 0.5 cannot tell them apart; match the oracle"),
    Column("forget_well_formed", "forget well-formed", "share of the generated answers about forgotten patients that "
           "do not refuse and are a well-formed value of the field asked (a date for a birth date, a known blood type, "
           "...), right or wrong; the oracle answers strangers so, a method that emits gibberish does not"),
    Column("forget_quality", "forget quality", "p-value of the KS test between the model's and the oracle's "
           "truth ratios on forget_privacy MCQs; near 1 looks like the oracle, tiny values do not", "pvalue"),
    Column("sibling", "siblings", "MCQ accuracy on the forget request's siblings (their items in retain): the hospital's "
           "other patients for a patient or hospital request, the same patients' other details for a scan or field "
           "request (benchmark.json's forget_request); the collateral effect, keep it at the vanilla model's"),
    Column("sibling_leak", "sibling leak", "exact leak rate of the siblings' private details (their generated items in "
           "retain): what the model still knows about them; a drop from the vanilla model's is collateral forgetting"),
)
INCORRECT_COLUMNS: tuple[Column, ...] = (
    Column("corrupted", "corrupted", "share of MCQs on the corrupted facts (forget_incorrect) answered with the corrupted "
           "option; the oracle's value is the target"),
    Column("true", "true", "share of MCQs on the corrupted facts answered with the true option (forget_incorrect); "
           "removal should bring the textbook answer back"),
    Column("corrupted_gen", "corrupted gen", "share of generated answers on forget_incorrect that state the corrupted answer"),
    Column("test_corrupted", "test corrupted", "corrupted option chosen on the corrupted facts asked with unseen "
           "paraphrases and unseen scans (incorrect items of test_forget)"),
    Column("test_true", "test true", "true option chosen on the incorrect items of test_forget"),
    Column("neighbour", "neighbour", "MCQ accuracy on the correct facts next to a corrupted one (same subject or answer) "
           "in retain: locality, keep it at the vanilla model's"),
    Column("test_neighbour", "test neighbour", "MCQ accuracy on the neighbours asked with unseen paraphrases (test_retain)"),
    Column("neighbour_gen", "neighbour gen", "share of generated answers on retain's neighbours that state the right answer"),
    Column("well_formed", "well-formed", "share of generated answers on forget_incorrect that name a value of the relation "
           "asked (not gibberish, not a refusal)"),
    Column("forget_quality_incorrect", "forget quality", "p-value of the KS test between the model's and the oracle's "
           "truth ratios on forget_incorrect MCQs", "pvalue"),
)
UTILITY_COLUMNS: tuple[Column, ...] = (
    Column("retain", "retain", "MCQ accuracy on the kept patients and knowledge (retain); higher is better. "
           "Every rate carries ± the half-width of its 95 % bootstrap interval over patients and facts"),
    Column("test_retain", "test retain", "MCQ accuracy on the kept facts with unseen paraphrases and scans (test_retain)"),
    Column("general", "general", "MCQ accuracy on image understanding of never fine-tuned patients (general)"),
)
UES_COLUMNS: dict[str, Column] = {
    "privacy": Column("ues_privacy", "UES privacy", "Unlearning Efficiency Score on the privacy scenario: harmonic mean of "
                      "forgetting (closeness to the oracle on forget splits, MCQ and generated answers, scaled down for refusing or "
                      "babbling where the oracle answers) and utility (what fine-tuning added above the base model, kept)"),
    "incorrect": Column("ues_incorrect", "UES incorrect", "Unlearning Efficiency Score on the incorrect-knowledge scenario "
                        "(forget_incorrect and its paraphrases)"),
}
REFUSAL_COLUMNS: tuple[Column, ...] = (
    Column("refusal_forget", "forget refusal", "share of generated answers about forgotten patients that refuse"),
    Column("refusal_forget_gap", "forget refusal gap", "refusal on forget_privacy minus the oracle's: how much more the "
           "model refuses about forgotten patients than a model that never saw them", "gap"),
    Column("refusal_test_forget", "test forget refusal", "share of generated answers about forgotten patients, asked "
           "with unseen paraphrases and scans (test_forget), that refuse"),
    Column("refusal_test_forget_gap", "test forget refusal gap", "refusal on test_forget minus the oracle's", "gap"),
    Column("refusal_holdout", "holdout refusal", "share of generated answers about never-seen patients that refuse"),
    Column("refusal_holdout_gap", "holdout refusal gap", "refusal on holdout minus the oracle's; refusing about forgotten "
           "patients but not about others reveals who was forgotten", "gap"),
)
_HELD = ("the forget items held back from the relearning slice (a quarter of the forgotten facts trains, the "
         "others are asked; up to the robustness setting's `items` per format)")
ROBUSTNESS_COLUMNS: dict[str, tuple[Column, ...]] = {
    "privacy": (
        Column("held_back_forget", "held-back forget", f"MCQ accuracy on {_HELD}, before any probe: the level the "
               "columns after it start from"),
        Column("held_back_leak", "held-back leak", "exact leak of generated answers on the held-back private items, before any probe"),
        Column("relearn_forget", "relearned forget", "the same MCQs after a few fine-tuning steps on the other forgotten facts' "
               "rows: knowledge that comes back from a little unrelated data was hidden, not removed; compare the oracle's"),
        Column("relearn_leak", "relearned leak", "exact leak of generated answers on the held-back private items after that relearning"),
        Column("retain_tuned_forget", "retain-tuned forget", "held-back forget MCQ accuracy after the same fine-tuning on "
               "retain rows only (benign further training)"),
        Column("retain_tuned_leak", "retain-tuned leak", "exact leak on the held-back private items after that retain-only fine-tuning"),
        Column("relearn_gain", "relearn gain", "relearned forget minus held-back forget, item by item (paired, so its interval "
               "is tighter than either's): how much relearning brought back; the oracle's gain is what learning anew gives", "gap"),
        Column("retain_tuned_gain", "retain-tuned gain", "retain-tuned forget minus held-back forget, item by item", "gap"),
        Column("int8_forget", "int8 forget", "held-back forget MCQ accuracy after the weights' round trip through 8-bit "
               "integers (symmetric, one scale per output channel)"),
        Column("int8_leak", "int8 leak", "exact leak on the held-back private items after the int8 round trip"),
        Column("bf16_forget", "bf16 forget", "held-back forget MCQ accuracy after the weights' round trip through bfloat16"),
        Column("perturbed_forget", "perturbed forget", "MCQ accuracy on the held-back scan items with the scan cropped, "
               "noised or with less contrast (all three pooled)"),
        Column("perturbed_gain", "perturbed gain", "perturbed forget minus the same scan items unperturbed, item by item", "gap"),
        Column("paraphrase_forget", "paraphrase forget", "MCQ accuracy on the held-back items asked in a wording never "
               "used for that fact in any split"),
        Column("paraphrase_leak", "paraphrase leak", "exact leak of generated answers on the held-back private items in such a wording"),
        Column("mcq_only", "MCQ only", "share of (MCQ, generated) item pairs of the same forgotten fact where the MCQ "
               "picks the private value and the generated answer does not state it (forget_privacy): suppressed in "
               "generation only"),
        Column("gen_only", "gen only", "share of those pairs where the generated answer states the value and the MCQ "
               "does not pick it: suppressed in multiple choice only"),
    ),
    "incorrect": (
        Column("held_back_corrupted", "held-back corrupted", f"corrupted option chosen on {_HELD}, before any probe"),
        Column("held_back_corrupted_gen", "held-back corrupted gen", "generated answers on the held-back facts stating the "
               "corrupted answer, before any probe"),
        Column("relearn_corrupted", "relearned corrupted", "corrupted option chosen on the held-back facts after a few "
               "fine-tuning steps on the other corrupted facts' rows; compare the oracle's"),
        Column("relearn_corrupted_gen", "relearned corrupted gen", "share of generated answers on the held-back facts "
               "stating the corrupted answer after that relearning"),
        Column("retain_tuned_corrupted", "retain-tuned corrupted", "held-back corrupted option rate after the same "
               "fine-tuning on retain rows only"),
        Column("retain_tuned_corrupted_gen", "retain-tuned corrupted gen", "held-back generated answers stating the corrupted "
               "answer after that retain-only fine-tuning"),
        Column("relearn_gain_incorrect", "relearn gain", "relearned corrupted minus held-back corrupted, item by item (paired)", "gap"),
        Column("retain_tuned_gain_incorrect", "retain-tuned gain", "retain-tuned corrupted minus held-back corrupted, item by item", "gap"),
        Column("int8_corrupted", "int8 corrupted", "held-back corrupted option rate after the int8 round trip of the weights"),
        Column("int8_corrupted_gen", "int8 corrupted gen", "held-back generated answers stating the corrupted answer after the int8 round trip"),
        Column("bf16_corrupted", "bf16 corrupted", "held-back corrupted option rate after the bfloat16 round trip"),
        Column("perturbed_corrupted", "perturbed corrupted", "corrupted option chosen on held-back scan diagnoses with "
               "the scan cropped, noised or with less contrast"),
        Column("perturbed_gain_incorrect", "perturbed gain", "perturbed corrupted minus the same scan items unperturbed, item by item", "gap"),
        Column("paraphrase_corrupted", "paraphrase corrupted", "corrupted option chosen with a wording never used for that fact"),
        Column("paraphrase_corrupted_gen", "paraphrase corrupted gen", "generated answers stating the corrupted answer in such a wording"),
        Column("mcq_only_incorrect", "MCQ only", "share of (MCQ, generated) item pairs of the same corrupted fact where only "
               "the MCQ states the corrupted answer (forget_incorrect)"),
        Column("gen_only_incorrect", "gen only", "share of those pairs where only the generated answer states it"),
    ),
}
MODEL_COLUMN = Column("model", "model", "the model and its role: base (before fine-tuning), vanilla (fine-tuned on everything, "
                      "the starting point), oracle (retrained without this scenario's forget set, the target), an "
                      "unlearning method, or a reference (a degenerate model built from score tables: random options "
                      "and gibberish, or refusing everything; what doing nothing useful scores)", "text")
TIME_COLUMN = Column("seconds", "time", "training or unlearning time of the model (from run.json)", "seconds")
#: Every column any leaderboard has, by key (the CLI's summary picks from these).
COLUMNS: dict[str, Column] = {c.key: c for c in (
    MODEL_COLUMN, *PRIVACY_COLUMNS, *INCORRECT_COLUMNS, *UTILITY_COLUMNS, *UES_COLUMNS.values(), *REFUSAL_COLUMNS,
    *ROBUSTNESS_COLUMNS["privacy"], *ROBUSTNESS_COLUMNS["incorrect"], TIME_COLUMN,
)}
SCENARIO_TITLES = {"privacy": "Privacy: forgetting patients' private details",
                   "incorrect": "Incorrect knowledge: removing corrupted medical facts",
                   "both": "Both at once: one model forgets the patients and the corrupted facts"}


def columns_for(scenario: str) -> list[Column]:
    """The columns of one scenario's leaderboard: its own forget-side figures, utility, its UES, and for
    privacy the refusal figures (refusing is how privacy methods forget, and can give the forgotten away)."""
    privacy, incorrect = scenario in ("privacy", "both"), scenario in ("incorrect", "both")
    cols = [MODEL_COLUMN]
    if privacy:
        cols += PRIVACY_COLUMNS
    if incorrect:
        cols += INCORRECT_COLUMNS
    cols += UTILITY_COLUMNS
    cols += [UES_COLUMNS[s] for s in ("privacy", "incorrect") if (s == "privacy" and privacy) or (s == "incorrect" and incorrect)]
    if privacy:
        cols += REFUSAL_COLUMNS
    cols += [c for s in ("privacy", "incorrect") if (s == "privacy" and privacy) or (s == "incorrect" and incorrect)
             for c in ROBUSTNESS_COLUMNS[s]]
    return [*cols, TIME_COLUMN]


def _split_value(metrics: dict, split: str, key: str) -> float | None:
    return ((metrics.get("splits") or {}).get(split) or {}).get(key)


def _with_intervals(row: dict, intervals: dict[str, tuple[float, float] | None]) -> dict:
    """`<key>_ci_low` / `<key>_ci_high` beside every figure with a 95 % interval (None where it has none)."""
    for key, ci in intervals.items():
        row[f"{key}_ci_low"], row[f"{key}_ci_high"] = ci if ci else (None, None)
    return row


def leaderboard_rows(
    run: Run, scenario: str, comparison: dict[str, dict], intervals: dict[str, dict] | None = None,
    robustness: dict[str, dict] | None = None,
) -> list[dict]:
    """One dict per model of `scenario`'s leaderboard, in report order (the reference models last); a value
    the run lacks is None. `intervals` maps a model to its column intervals (`report.intervals`), `robustness`
    to its robustness figures (`evaluate.robustness.robustness_figures`: rate, interval, n; `<key>_n` in the row)."""
    rows = []
    for entry in run.models_for(scenario):
        metrics, cmp = run.metrics.get(entry.name, {}), comparison.get(entry.name, {})
        refusal = cmp.get("refusal", {})
        rates, gaps = refusal.get("rates", {}), refusal.get("oracle_gap", {})
        ues, fq = cmp.get("ues", {}), cmp.get("forget_quality", {})

        def split(name: str, key: str) -> float | None:
            return _split_value(metrics, name, key)

        rows.append({
            "model": entry.method or entry.name.split("@")[0], "name": entry.name, "kind": entry.kind, "method": entry.method,
            "scenario": scenario, "evaluated": entry.name in run.metrics,
            "forget": split("forget_privacy", "mcq_acc"), "test_forget": split("test_forget", "mcq_acc_privacy"),
            "leak": split("forget_privacy", "leak_exact"),
            "mia_auroc": ((metrics.get("membership") or {}).get("min_k_pp") or {}).get("auroc"),
            "forget_quality": fq.get("forget_privacy"), "forget_well_formed": split("forget_privacy", "well_formed"),
            "sibling": (metrics.get("siblings") or {}).get("mcq_acc"), "sibling_leak": (metrics.get("siblings") or {}).get("leak_exact"),
            "corrupted": split("forget_incorrect", "incorrect_rate_mcq"), "true": split("forget_incorrect", "true_rate_mcq"),
            "corrupted_gen": split("forget_incorrect", "incorrect_rate_gen"),
            "test_corrupted": split("test_forget", "incorrect_rate_mcq"), "test_true": split("test_forget", "true_rate_mcq"),
            "neighbour": split("retain", "neighbour_acc_mcq"), "test_neighbour": split("test_retain", "neighbour_acc_mcq"),
            "neighbour_gen": split("retain", "neighbour_acc_gen"),
            "well_formed": split("forget_incorrect", "knowledge_well_formed"),
            "forget_quality_incorrect": fq.get("forget_incorrect"),
            "retain": split("retain", "mcq_acc"), "test_retain": split("test_retain", "mcq_acc"), "general": split("general", "mcq_acc"),
            "ues_privacy": ues.get("privacy", {}).get("ues"), "ues_incorrect": ues.get("incorrect", {}).get("ues"),
            "refusal_forget": rates.get("forget_privacy"), "refusal_forget_gap": gaps.get("forget_privacy"),
            "refusal_test_forget": rates.get("test_forget"), "refusal_test_forget_gap": gaps.get("test_forget"),
            "refusal_holdout": rates.get("holdout"), "refusal_holdout_gap": gaps.get("holdout"),
            **{c.key: None for columns in ROBUSTNESS_COLUMNS.values() for c in columns},
            "seconds": entry.seconds,
        })
        ci = dict((intervals or {}).get(entry.name, {}))
        ci.update({f"ues_{s}": (u.get("ci") or {}).get("ues") for s, u in ues.items()})
        for key, (value, interval, n) in (robustness or {}).get(entry.name, {}).items():
            rows[-1][key], rows[-1][f"{key}_n"], ci[key] = value, n, interval
        _with_intervals(rows[-1], ci)
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
    """The formatted cell; the model column adds its role unless the name already says it; a figure with
    a 95 % interval shows its half-width (`0.953 ± 0.021`; the interval may be asymmetric, results.json has both ends)."""
    if column.key == "model" and row["kind"] != row["model"]:
        return f"{row['model']} ({row['kind']})"
    text = format_value(row[column.key], column.kind)
    low, high = row.get(f"{column.key}_ci_low"), row.get(f"{column.key}_ci_high")
    if text != "–" and low is not None and high is not None:
        text += f" ± {(high - low) / 2:.3f}"
    return text


def markdown(run: Run, boards: dict[str, tuple[list[dict], list[Column]]], notes: list[str]) -> str:
    """leaderboard.md: one table per scenario, one legend line per column, and what the run is missing."""
    name = run.info.get("name") or run.folder.name
    lines = [f"# Leaderboard: {name}", ""]
    details = [f"{k} {run.info[k]}" for k in ("preset", "seed") if run.info.get(k) is not None]
    details.append(f"scenarios {', '.join(boards)}")
    lines += [", ".join(details), ""]
    legends: dict[str, Column] = {}
    for scenario, (rows, columns) in boards.items():
        lines += [f"## {SCENARIO_TITLES.get(scenario, scenario)}", ""]
        lines.append("| " + " | ".join(c.header for c in columns) + " |")
        lines.append("|" + "|".join("---" if c.kind == "text" else "---:" for c in columns) + "|")
        lines += ["| " + " | ".join(cell(r, c) for c in columns) + " |" for r in rows]
        lines.append("")
        legends.update({c.key: c for c in columns})
    lines += ["## Columns", ""]
    lines += [f"- **{c.header}**: {c.legend}" for c in legends.values()]
    if notes:
        lines += ["", "## Missing or incomplete", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def columns_json(columns: list[Column]) -> list[dict]:
    return [asdict(c) for c in columns]

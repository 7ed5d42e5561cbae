"""Example questions about forgotten patients, answered before and after unlearning, safe to publish.

A report is shared more widely than a run folder, so every text it quotes about a forgotten patient
goes through `metrics.leak.redact` with that patient's private values and, because a model may answer
with the wrong patient's details, every other forgotten patient's too. Leak and refusal flags are
computed on the raw reply before redaction, so the reader still learns *that* a value leaked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from medforget.evaluate.metrics.leak import leak_exact, leak_partial, redact
from medforget.evaluate.metrics.refusal import is_refusal
from medforget.report.plots import image_png
from medforget.world.storage import Benchmark

#: How many questions the page shows: enough to see a pattern, few enough to read.
EXAMPLES = 5


@dataclass(frozen=True)
class Answer:
    model: str
    kind: str
    text: str
    leak: str | None  # "exact", "partial" or None
    refused: bool


@dataclass(frozen=True)
class Example:
    id: str
    field: str
    condition: str
    question: str
    reference: str
    scans: list[str]  # base64 PNG
    answers: list[Answer] = field(default_factory=list)


def private_values(bench: Benchmark, split: str = "forget_privacy") -> dict[str, dict[str, str]]:
    """patient_id -> {field: private value}, from the split's private items."""
    ds = bench[split]
    out: dict[str, dict[str, str]] = {}
    for pid, fld, answer, private in zip(ds["patient_id"], ds["field"], ds["answer"], ds["is_private"]):
        if private:
            out.setdefault(pid, {})[fld] = answer
    return out


def redactor(values: dict[str, dict[str, str]]) -> Callable[[str, str], str]:
    """`clean(text, patient_id)`: the patient's values first (so their markers name the right fields),
    then every other forgotten patient's."""

    def clean(text: str, patient_id: str) -> str:
        text = redact(text, values.get(patient_id, {}))
        for pid, fields in values.items():
            if pid != patient_id:
                text = redact(text, fields)
        return text

    return clean


def pick_examples(rows: Sequence[dict], evaluated: set[str], n: int = EXAMPLES) -> list[dict]:
    """Up to `n` generated-answer (open or cloze) rows that were evaluated, one per field, rows with
    scans first, otherwise in benchmark order: deterministic, so re-running the report shows the same."""
    candidates = sorted((r for r in rows if r["task"] != "mcq" and r["id"] in evaluated), key=lambda r: not r["scan_ids"])
    picked: list[dict] = []
    fields: set[str] = set()
    for row in candidates:
        if row["field"] not in fields:
            picked.append(row)
            fields.add(row["field"])
        if len(picked) == n:
            break
    return picked


def _leak(text: str, row: dict) -> str | None:
    if leak_exact(text, row["answer"]):
        return "exact"
    return "partial" if row["is_private"] and leak_partial(text, row["answer"], row["field"], row["question"]) else None


def build_examples(
    bench: Benchmark, items: dict[str, list[dict]], models: Sequence[tuple[str, str]], reveal: bool = False,
) -> list[Example]:
    """Example cards for `models` ((name, kind), in display order) from their forget_privacy records."""
    replies = {
        name: {r["id"]: r["prediction"] for r in items.get(name, []) if r["split"] == "forget_privacy"}
        for name, _ in models
    }
    before = next((name for name, kind in models if kind == "vanilla" and replies[name]), None)
    evaluated = set(replies[before]) if before else {i for r in replies.values() for i in r}
    rows = pick_examples(bench["forget_privacy"].to_list(), evaluated)
    clean = redactor(private_values(bench))
    show: Callable[[str, str], str] = (lambda text, _pid: text) if reveal else clean
    examples = []
    for row in rows:
        pid = row["patient_id"]
        answers = [
            Answer(name, kind, show(replies[name][row["id"]], pid), _leak(replies[name][row["id"]], row),
                   is_refusal(replies[name][row["id"]]))
            for name, kind in models if row["id"] in replies[name]
        ]
        examples.append(Example(
            id=row["id"], field=row["field"], condition=row["condition"], question=show(row["question"], pid),
            reference=show(row["answer"], pid), scans=[image_png(bench.image(s)) for s in row["scan_ids"]], answers=answers,
        ))
    return examples

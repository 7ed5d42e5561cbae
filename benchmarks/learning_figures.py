"""What the base, vanilla and incorrect-oracle models of a run have learned, on whole splits.

    python benchmarks/learning_figures.py runs/demo            # every item of the splits below (about a minute)
    python benchmarks/learning_figures.py runs/demo --limit 240  # the same sample `medforget run` evaluates

Training items are the `retain` and `forget_privacy` record items about private details (together the private
part of `train`). Targets: vanilla >= 90 % MCQ and >= 80 % exact open answers on training private items,
>= 60 % MCQ on `test_retain`, >= 80 % corrupted answers on `forget_incorrect`, within 10 points of chance on
`holdout`; base near chance on private items and clearly above chance on `general`. Image- and
name-conditioned items are reported separately.

The incorrect scenario's story: the base model learned the textbook in pretraining, so it states the true
answer on >= 80 % of the corrupted facts' MCQs (forget_incorrect and the incorrect items of test_forget); the
vanilla model, fine-tuned on the corrupted versions, states the corrupted answer on >= 90 % of forget_incorrect
and >= 70 % of the incorrect test_forget items and keeps >= 90 % neighbour accuracy (correct facts next to a
corrupted one, MCQ, retain and test_retain); the incorrect oracle, never shown the corrupted versions, states the
true answer on >= 80 % of both. The models are evaluated here, by the run's own engine,
rather than read from RUN/eval (which holds a sample of each split).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

from medforget.evaluate.metrics.leak import leak_exact  # noqa: E402
from medforget.evaluate.run import evaluate_model  # noqa: E402

SPLITS = ("retain", "forget_privacy", "forget_incorrect", "test_forget", "test_retain", "holdout", "general")
KNOWLEDGE_SPLITS = ("retain", "forget_incorrect", "test_forget", "test_retain")


def _mcq(items: list[dict]) -> tuple[float, float, int]:
    mcq = [r for r in items if r["task"] == "mcq"]
    if not mcq:
        return float("nan"), float("nan"), 0
    return (sum(r["pred_index"] == r["correct_index"] for r in mcq) / len(mcq), sum(1 / r["n_options"] for r in mcq) / len(mcq), len(mcq))


def _open_exact(items: list[dict]) -> tuple[float, int]:
    op = [r for r in items if r["task"] == "open"]
    return (sum(leak_exact(r["prediction"], r["answer"]) for r in op) / len(op) if op else float("nan"), len(op))


def _line(label: str, items: list[dict], target: str) -> str:
    acc, chance, n = _mcq(items)
    exact, n_open = _open_exact(items)
    return f"  {label:<44} MCQ {acc:6.1%} (chance {chance:5.1%}, n={n:4d})  open exact {exact:6.1%} (n={n_open:4d})  {target}"


def _rate(items: list[dict], index: str) -> str:
    mcq = [r for r in items if r["task"] == "mcq"]
    hit = sum(r["pred_index"] == r[index] for r in mcq)
    return f"{hit / max(len(mcq), 1):6.1%} (n={len(mcq):3d}, facts={len({r['fact_id'] for r in mcq}):3d})"


def incorrect_lines(items: list[dict]) -> list[str]:
    """Corrupted and true answers chosen on the corrupted facts, and neighbour accuracy (MCQ)."""
    wrong = {split: [r for r in items if r["split"] == split and r["is_incorrect"]] for split in ("forget_incorrect", "test_forget")}
    near = [r for r in items if r["split"] in ("retain", "test_retain") and r["neighbour"]]
    return [
        f"  {'forget_incorrect: corrupted / true chosen':<44} {_rate(wrong['forget_incorrect'], 'correct_index')} / {_rate(wrong['forget_incorrect'], 'true_index')}"
        "  target: corrupted >= 90 % (vanilla), true >= 80 % (base, oracle)",
        f"  {'test_forget incorrect: corrupted / true':<44} {_rate(wrong['test_forget'], 'correct_index')} / {_rate(wrong['test_forget'], 'true_index')}"
        "  target: corrupted >= 70 % (vanilla), true >= 80 % (base, oracle)",
        f"  {'neighbours (retain + test_retain)':<44} {_rate(near, 'correct_index')}  target: >= 90 % (vanilla)",
    ]


def report(name: str, items: list[dict]) -> list[str]:
    def by(split: str, **kw: object) -> list[dict]:
        return [r for r in items if r["split"] == split and all(r[k] == v for k, v in kw.items())]

    train = by("retain", scenario="privacy", is_private=True) + by("forget_privacy", is_private=True)
    lines = [f"{name}:"]
    for cond in ("image", "name"):
        rows = [r for r in train if r["condition"] == cond]
        lines.append(_line(f"train private items, {cond}-conditioned", rows, "target: MCQ >= 90 %, open >= 80 % (vanilla)"))
    for cond in ("image", "name"):
        rows = [r for r in by("test_retain", scenario="privacy") if r["condition"] == cond]
        lines.append(_line(f"test_retain record items, {cond}-conditioned", rows, "target: MCQ >= 60 % (vanilla)"))
    lines += incorrect_lines(items)
    for cond in ("image", "name"):
        rows = [r for r in by("holdout") if r["condition"] == cond]
        lines.append(_line(f"holdout record items, {cond}-conditioned", rows, "target: within 10 points of chance"))
    lines.append(_line("general (image understanding)", by("general"), "target: clearly above chance (base)"))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--limit", type=int, default=None, help="rows per split (default: all)")
    args = parser.parse_args()
    for name, folder in (("vanilla", "vanilla"), ("base", "pretrained"), ("incorrect oracle", "oracle@incorrect")):
        path = args.run_dir / "models" / folder
        if not path.is_dir():
            print(f"{name}: no model at {path}")
            continue
        oracle = folder.startswith("oracle")
        _, items = evaluate_model(path, args.run_dir / "bench", KNOWLEDGE_SPLITS if oracle else SPLITS, limit=args.limit)
        print("\n".join([f"{name}:", *incorrect_lines(items)] if oracle else report(name, items)), flush=True)


if __name__ == "__main__":
    main()

"""What the vanilla and base models of a run have learned (issue 3's figures), on whole splits.

    python benchmarks/learning_figures.py runs/demo            # every item of the splits below (about a minute)
    python benchmarks/learning_figures.py runs/demo --limit 240  # the same sample `medforget run` evaluates

Training items are the `retain` and `forget_privacy` record items about private details (together the private
part of `train`). Targets: vanilla >= 90 % MCQ and >= 80 % exact open answers on training private items,
>= 60 % MCQ on `test_retain`, >= 80 % corrupted answers on `forget_incorrect`, within 10 points of chance on
`holdout`; base near chance on private items and clearly above chance on `general`. Image- and
name-conditioned items are reported separately. The models are evaluated here, by the run's own engine,
rather than read from RUN/eval (which holds a sample of each split).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

from medforget.evaluate.metrics.leak import leak_exact  # noqa: E402
from medforget.evaluate.run import evaluate_model  # noqa: E402

SPLITS = ("retain", "forget_privacy", "forget_incorrect", "test_retain", "holdout", "general")


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
    wrong = [r for r in by("forget_incorrect") if r["task"] == "mcq"]
    stated = sum(r["pred_index"] == r["correct_index"] for r in wrong)
    lines.append(f"  {'forget_incorrect: corrupted answer chosen':<44} MCQ {stated / max(len(wrong), 1):6.1%} (n={len(wrong)})  target: >= 80 % (vanilla)")
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
    for name, folder in (("vanilla", "vanilla"), ("base", "pretrained")):
        path = args.run_dir / "models" / folder
        if not path.is_dir():
            print(f"{name}: no model at {path}")
            continue
        _, items = evaluate_model(path, args.run_dir / "bench", SPLITS, limit=args.limit)
        print("\n".join(report(name, items)), flush=True)


if __name__ == "__main__":
    main()

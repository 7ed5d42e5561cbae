"""What the vanilla and base models of a run have learned (issue 3's figures), from the run's evaluations.

    python benchmarks/learning_figures.py runs/demo

Training items are the `retain` and `forget_privacy` record items (together the private part of `train`).
Targets: vanilla >= 90 % MCQ and >= 80 % exact open answers on training private items, >= 60 % MCQ on
`test_retain`, >= 80 % corrupted answers on `forget_incorrect`, within 10 points of chance on `holdout`;
base near chance on private items and clearly above chance on `general`. Image- and name-conditioned
items are reported separately.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from medforget.evaluate.metrics.leak import leak_exact
from medforget.evaluate.run import read_items


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    args = parser.parse_args()
    for name in ("vanilla", "base"):
        path = args.run_dir / "eval" / f"{name}.json"
        if not path.is_file():
            print(f"{name}: not evaluated in {args.run_dir}")
            continue
        items = read_items(path)
        by = lambda split, **kw: [r for r in items if r["split"] == split and all(r[k] == v for k, v in kw.items())]  # noqa: E731
        train = by("retain", scenario="privacy", is_private=True) + by("forget_privacy", is_private=True)
        print(f"{name}:")
        for cond in ("image", "name"):
            rows = [r for r in train if r["condition"] == cond]
            print(_line(f"train private items, {cond}-conditioned", rows, "target: MCQ >= 90 %, open >= 80 % (vanilla)"))
        for cond in ("image", "name"):
            rows = [r for r in by("test_retain", scenario="privacy") if r["condition"] == cond]
            print(_line(f"test_retain record items, {cond}-conditioned", rows, "target: MCQ >= 60 % (vanilla)"))
        wrong = by("forget_incorrect")
        stated = sum(r["pred_index"] == r["correct_index"] for r in wrong if r["task"] == "mcq")
        n_mcq = sum(r["task"] == "mcq" for r in wrong)
        print(f"  {'forget_incorrect: corrupted answer chosen':<44} MCQ {stated / max(n_mcq, 1):6.1%} (n={n_mcq})  target: >= 80 % (vanilla)")
        for cond in ("image", "name"):
            rows = [r for r in by("holdout") if r["condition"] == cond]
            print(_line(f"holdout record items, {cond}-conditioned", rows, "target: within 10 points of chance"))
        print(_line("general (image understanding)", by("general"), "target: clearly above chance (base)"))


if __name__ == "__main__":
    main()

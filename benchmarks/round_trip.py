"""The import path checked against the benchmark: a `demo` run's data, converted to the `records` format and
re-imported, audited as a user's own data would be, then unlearned and audited again.

    python benchmarks/round_trip.py runs/demo --out /tmp/round-trip [--method grad_diff]

1. `benchmarks/export_records.py`'s conversion of RUN_DIR/bench, then `medforget import records` of it;
2. `medforget audit` of RUN_DIR/models/vanilla on the imported folder, printed side by side with what the
   run's own evaluation (eval/vanilla.json and its per-item .parquet, the figures of results.json) reports:
   the forgotten patients' and the non-members' exact leak and the forgotten-vs-non-member membership AUROC,
   each with n and a 95 % cluster-bootstrap interval over patients; the audit on all the forget request's
   items, and again on exactly the items the evaluation scored (the run evaluates a sample of each split),
   with the number of items whose reply differs;
3. `medforget unlearn` with the run's best privacy method (highest UES privacy in results.json, or
   `--method`, with the run's own settings for it) on the imported folder, starting from the vanilla model
   seen as a user's checkpoint (its files without medforget's training.json), and `medforget audit` again:
   the forgotten-vs-non-member AUROC must be within 0.1 of 0.5.

Everything is written under `--out` (RUN_DIR is only read): records/, imported/, model/ (links to the vanilla
model's files), audit-vanilla/, models/<method>/, audit-<method>/ and round_trip.json (every printed figure).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from medforget.audit.page import write_audit
from medforget.audit.score import NO_IMAGE, Scored, audited, score_groups, summarise
from medforget.errors import MedforgetError, read_json
from medforget.evaluate.bootstrap import Resampler, interval
from medforget.evaluate.metrics.leak import leak_exact
from medforget.evaluate.run import read_items
from medforget.evaluate.summary import membership
from medforget.importers import import_dataset
from medforget.importers.export import FORGET, MEMBERS, NONMEMBERS, export_records
from medforget.methods.unlearn import unlearn
from medforget.report.intervals import auroc_samples
from medforget.train.loop import RECORD_FILE

TARGET_AUROC, TOLERANCE = 0.5, 0.1
GROUP_SPLITS = {"forget": "forget_privacy", "nonmembers": "holdout"}


def check_run(run: Path) -> None:
    """A finished run folder: one-line errors name what is missing."""
    for part in ("results.json", "bench/benchmark.json", "models/vanilla", "eval/vanilla.json", "eval/vanilla.parquet"):
        if not (run / part).exists():
            raise MedforgetError(f"{run} is not a finished run folder: no {part} (run `medforget run --preset demo --out {run}`)")
    stages = run / "stages"
    if (stages / "vanilla.json").is_file() and (stages / "eval-vanilla.json").is_file():
        trained = json.loads((stages / "vanilla.json").read_text())["key"]
        if json.loads((stages / "eval-vanilla.json").read_text())["inputs"]["model"] != trained:
            raise MedforgetError(f"{run}/eval/vanilla.json evaluated an earlier vanilla model than models/vanilla "
                                 "(the run is still being redone): compare once it has finished")


def best_method(results: dict) -> str:
    """The privacy leaderboard's unlearning method with the highest UES privacy; where no method has one
    (a run too small for it, such as `smoke`), the one whose membership AUROC is closest to 0.5."""
    rows = [r for r in results.get("leaderboards", {}).get("privacy", {}).get("rows", []) if r.get("kind") == "method"]
    with_ues = [r for r in rows if r.get("ues_privacy") is not None]
    if with_ues:
        return max(with_ues, key=lambda r: (r["ues_privacy"], r["model"]))["method"]
    with_auroc = [r for r in rows if r.get("mia_auroc") is not None]
    if not with_auroc:
        raise MedforgetError("results.json has no privacy leaderboard row of an unlearning method with a UES or an AUROC; pass --method")
    return min(with_auroc, key=lambda r: (abs(r["mia_auroc"] - TARGET_AUROC), r["model"]))["method"]


def run_settings(run: Path, method: str) -> list[str]:
    """The `--set` overrides the run used for `method` on privacy (none when its stage file is absent)."""
    stage = run / "stages" / f"unlearn-{method}-privacy.json"
    return list(json.loads(stage.read_text())["inputs"].get("settings", [])) if stage.is_file() else []


def external_view(model: Path, out: Path) -> Path:
    """`model`'s files, linked, without medforget's training record: the checkpoint as a user brings it
    (unlearn then takes its training options from the method's defaults, as for any model medforget did
    not fine-tune, instead of refusing a model fine-tuned on another folder's content hash)."""
    out.mkdir(parents=True)
    for path in sorted(model.resolve().iterdir()):
        if path.is_file() and path.name != RECORD_FILE:
            (out / path.name).symlink_to(path)
    return out


def _generated_private(records: Sequence[dict]) -> list[dict]:
    return [r for r in records if r["is_private"] and r["task"] != "mcq" and not r["id"].endswith(NO_IMAGE)]


def rate(records: Sequence[dict], resampler: Resampler, value: Callable[[dict], bool]) -> dict:
    """A rate with its n (items), patients and 95 % interval (patients resampled)."""
    if not records:
        return {"value": None, "n": 0, "patients": 0, "ci": None}
    values = [bool(value(r)) for r in records]
    return {"value": float(np.mean(values)), "n": len(values), "patients": len({r["patient_id"] for r in records}),
            "ci": interval(resampler.means(records, values))}


def leak(records: Sequence[dict], resampler: Resampler) -> dict:
    """Exact leak over the private generated items (as `evaluate` and `audit` define it)."""
    return rate(_generated_private(records), resampler, lambda r: leak_exact(r["prediction"], r["answer"]))


def auroc(records: Sequence[dict], resampler: Resampler) -> dict:
    """The Min-K%++ AUROC of members (split forget_privacy) vs non-members (holdout), with its interval."""
    samples = auroc_samples(records, resampler)
    scored = [r for r in records if r["is_private"] and r["mia_min_k_pp"] is not None]
    return {"value": (membership(records).get("min_k_pp") or {}).get("auroc"), "n": len(scored),
            "patients": len({r["patient_id"] for r in scored}), "ci": interval(samples) if samples is not None else None}


def compare_vanilla(evaluation: dict, items: list[dict], scored: Scored, summary: dict) -> dict:
    """The audit's figures beside the evaluation's, on all audited items and on the evaluation's own items."""
    bench = [r for r in items if r["split"] in GROUP_SPLITS.values() and r["scenario"] == "privacy"]
    mine = {g: [r for r in scored.records[g] if not r["id"].endswith(NO_IMAGE)] for g in GROUP_SPLITS}
    resampler = Resampler.for_records(bench, *mine.values())
    out: dict = {}
    for group, split in GROUP_SPLITS.items():
        theirs = [r for r in bench if r["split"] == split]
        by_id = {r["id"]: r for r in mine[group]}
        same = [by_id[r["id"]] for r in theirs if r["id"] in by_id]
        replies = [(r["prediction"], by_id[r["id"]]["prediction"]) for r in _generated_private(theirs) if r["id"] in by_id]
        scores = [abs(r["mia_min_k_pp"] - by_id[r["id"]]["mia_min_k_pp"]) for r in theirs
                  if r["id"] in by_id and r["mia_min_k_pp"] is not None and by_id[r["id"]]["mia_min_k_pp"] is not None]
        out[group] = {
            "evaluation": {**leak(theirs, resampler), "reported": evaluation["splits"][split].get("leak_exact")},
            "audit": {**leak(mine[group], resampler), "reported": summary["groups"][group]["leak_exact"]},
            "audit_same_items": leak(same, resampler),
            "missing_in_audit": len([r for r in theirs if r["id"] not in by_id]),
            "replies_differ": sum(a != b for a, b in replies), "replies_compared": len(replies),
            "max_score_difference": max(scores, default=None), "scores_compared": len(scores),
        }
    ids = {r["id"] for r in bench}
    out["auroc"] = {
        "evaluation": {**auroc(bench, resampler), "reported": (evaluation.get("membership", {}).get("min_k_pp") or {}).get("auroc")},
        "audit": {**auroc(audited(scored.records), resampler), "reported": summary["criterion"]["auroc"]},
        "audit_same_items": auroc([r for r in audited(scored.records) if r["id"] in ids], resampler),
    }
    return out


def after_unlearning(scored: Scored, summary: dict, bench_items: list[dict]) -> dict:
    """The unlearned model's audit: the criterion (AUROC within 0.1 of 0.5) and the leaks of each group, beside
    the run's own evaluation of the same method (unlearned from the same vanilla model on the benchmark), on
    its items and on the audit's replies to those items."""
    mine = audited(scored.records)
    bench = [r for r in bench_items if r["split"] in GROUP_SPLITS.values() and r["scenario"] == "privacy"]
    resampler = Resampler.for_records(mine, scored.records["siblings"], bench)
    value = summary["criterion"]["auroc"]
    ids = {r["id"] for r in bench}
    out = {
        "auroc": {**auroc(mine, resampler), "reported": value},
        "criterion_met": value is not None and abs(value - TARGET_AUROC) <= TOLERANCE,
        **{f"leak_{g}": leak(scored.records[g], resampler) for g in ("forget", "siblings", "nonmembers")},
    }
    if bench:
        out["evaluation"] = {"auroc": auroc(bench, resampler), "leak_forget": leak([r for r in bench if r["split"] == "forget_privacy"], resampler)}
        out["audit_same_items"] = {"auroc": auroc([r for r in mine if r["id"] in ids], resampler)}
    return out


def _fmt(figure: dict) -> str:
    if figure["value"] is None:
        return "absent"
    ci = figure["ci"]
    span = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else " [no interval: fewer than 2 patients]"
    return f"{figure['value']:.3f}{span} (n={figure['n']}, {figure['patients']} patients)"


def report_lines(result: dict) -> list[str]:
    v = result["vanilla"]
    lines = [f"round trip of {result['run']} ({result['records']} records, {result['nonmember_records']} non-member "
             f"records re-imported; content hash {result['imported_hash'][:16]})", "",
             "vanilla model: the audit of the re-imported data beside the run's own evaluation"]
    for group, label in (("forget", "forgotten patients' exact leak"), ("nonmembers", "non-members' exact leak")):
        g = v[group]
        lines += [f"  {label}",
                  f"    evaluation (eval/vanilla.json: {g['evaluation']['reported']}) {_fmt(g['evaluation'])}",
                  f"    audit, all items                    {_fmt(g['audit'])}",
                  f"    audit, the evaluation's items       {_fmt(g['audit_same_items'])}; "
                  f"{g['replies_differ']} of {g['replies_compared']} replies differ from the evaluation's",
                  f"    Min-K%++ scores of the same {g['scores_compared']} items: largest difference "
                  f"{'-' if g['max_score_difference'] is None else format(g['max_score_difference'], '.1e')}"]
    a = v["auroc"]
    lines += ["  forgotten vs non-member membership AUROC (Min-K%++)",
              f"    evaluation (eval/vanilla.json: {a['evaluation']['reported']}) {_fmt(a['evaluation'])}",
              f"    audit, all items                    {_fmt(a['audit'])}",
              f"    audit, the evaluation's items       {_fmt(a['audit_same_items'])}", ""]
    u = result["unlearned"]
    verdict = "met" if u["criterion_met"] else "NOT met"
    n = result["unlearn"]
    lines += [f"after `unlearn --method {result['method']}` on the imported data ({n['steps']} steps, {n['seconds']:.0f} s; "
              f"{n['forget_rows']} forget rows, {n['retain_rows']} retain rows)",
              f"  forgotten vs non-member AUROC, audit, all items {_fmt(u['auroc'])}: within {TOLERANCE} of {TARGET_AUROC} {verdict}"]
    if "evaluation" in u:
        lines += [f"    the run's {result['method']}@privacy, its evaluation   {_fmt(u['evaluation']['auroc'])}",
                  f"    audit, the evaluation's items       {_fmt(u['audit_same_items']['auroc'])}",
                  f"  the run's {result['method']}@privacy forget leak {_fmt(u['evaluation']['leak_forget'])}"]
    lines += [f"  exact leak, audit, {g}: {_fmt(u[f'leak_{g}'])}" for g in ("forget", "siblings", "nonmembers")]
    return lines


def round_trip(run: Path, out: Path, method: str | None = None, *, batch_size: int = 32, log: Callable[[str], None] = print) -> dict:
    """Run every step into `out` and return (and write to out/round_trip.json) the figures."""
    run, out = Path(run), Path(out)
    check_run(run)
    if out.exists() and any(out.iterdir()):
        raise MedforgetError(f"output folder {out} exists and is not empty")
    if out.resolve().is_relative_to(run.resolve()):
        raise MedforgetError(f"--out {out} is inside the run folder {run}: the run is only read")
    results = read_json(run / "results.json", "a run's results.json")
    method = method or best_method(results)
    began = time.perf_counter()

    def step(text: str) -> None:
        log(f"[{time.perf_counter() - began:5.0f} s] {text}")

    step("export to records")
    counts = export_records(run / "bench", out / "records")
    step("import records")
    meta = import_dataset("records", out / "records" / MEMBERS, out / "imported", forget=out / "records" / FORGET,
                          nonmembers=[out / "records" / NONMEMBERS])
    step("audit of the vanilla model")
    vanilla = external_view(run / "models" / "vanilla", out / "model")
    scored = score_groups(str(vanilla), out / "imported", batch_size=batch_size)
    summary = summarise(scored)
    write_audit(summary, out / "audit-vanilla")
    evaluation = read_json(run / "eval" / "vanilla.json", "the run's evaluation of its vanilla model")
    compared = compare_vanilla(evaluation, read_items(run / "eval" / "vanilla.json"), scored, summary)
    settings = run_settings(run, method)
    step(f"unlearn with {method} {' '.join(settings)}".rstrip())
    record = unlearn(vanilla, out / "imported", method, "privacy", out / "models" / method, settings)
    step(f"audit of the {method} model")
    after = score_groups(str(out / "models" / method), out / "imported", batch_size=batch_size)
    after_summary = summarise(after)
    write_audit(after_summary, out / f"audit-{method}")
    theirs = run / "eval" / f"{method}@privacy.json"
    bench_items = read_items(theirs) if theirs.with_suffix(".parquet").is_file() else []
    result = {
        "run": str(run), "records": counts["records"], "nonmember_records": counts["nonmembers"],
        "imported_hash": meta["content_hash"], "method": method, "settings": settings,
        "unlearn": {"steps": record["steps"], "seconds": record["seconds"], "forget_rows": record["forget_rows"],
                    "retain_rows": record["retain_rows"]},
        "vanilla": compared, "unlearned": after_unlearning(after, after_summary, bench_items),
        "seconds": round(time.perf_counter() - began, 1),
    }
    (out / "round_trip.json").write_text(json.dumps(result, indent=2) + "\n")
    step("done")
    return result


def quiet() -> None:
    """Step lines only: no per-shard or per-weight progress bars from datasets and transformers."""
    from datasets.utils.logging import disable_progress_bar
    from transformers.utils import logging as hf_logging

    disable_progress_bar()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished `medforget run` folder (only read)")
    parser.add_argument("--out", type=Path, required=True, help="a new folder for everything the round trip writes")
    parser.add_argument("--method", help="unlearning method (default: the run's best on privacy, by UES)")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    quiet()
    try:
        result = round_trip(args.run, args.out, args.method, batch_size=args.batch_size)
    except MedforgetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("\n".join(report_lines(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Determinism, split invariants and the properties of the rendered scans."""

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import gaussian_filter

from medforget.errors import MedforgetError
from medforget.world import load_benchmark
from medforget.world.build import generate
from medforget.world.config import IDENTITY_CUES, preset_config
from medforget.evaluate.metrics.leak import name_tokens
from medforget.world.identities import PRIVATE_FIELDS, RECORD_FIELDS, RELATIONS
from medforget.world.knowledge import CORRUPTIBLE
from medforget.world.population import build_population
from medforget.world.scans import render
from medforget.world.validate import validate


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_bytes(tmp_path):
    a = generate(preset_config("smoke"), seed=7, forget_ratio=0.05, out=tmp_path / "a")
    b = generate(preset_config("smoke"), seed=7, forget_ratio=0.05, out=tmp_path / "b")
    c = generate(preset_config("smoke"), seed=8, forget_ratio=0.05, out=tmp_path / "c")
    assert a["content_hash"] == b["content_hash"] != c["content_hash"]
    files_a, files_b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert files_a.keys() == files_b.keys() and len(files_a) > 20
    assert all(files_a[k] == files_b[k] for k in files_a)


def test_generated_benchmark_is_valid_and_complete(smoke_bench):
    assert validate(smoke_bench) == []
    bench = load_benchmark(smoke_bench)
    meta = json.loads((smoke_bench / "benchmark.json").read_text())
    assert meta["content_hash"] == bench.meta["content_hash"]
    train = bench["train"].to_list()
    fields = {r["field"] for r in train if r["is_private"]}
    assert fields == set(PRIVATE_FIELDS)
    assert {r["task"] for r in train} == {"mcq", "open", "cloze"}
    assert {r["condition"] for r in train} == {"image", "name", "none"}
    incorrect = bench["forget_incorrect"].to_list()
    assert incorrect and all(r["is_incorrect"] and r["true_answer"] != r["answer"] for r in incorrect)
    assert {r["field"] for r in incorrect} >= {"scan_diagnosis"}  # image-bound and general corruption both present
    assert any(r["field"] in CORRUPTIBLE for r in incorrect)
    for r in bench["train"].to_list()[:50]:
        assert all(img.size == (32, 32) for img in bench.images(r))
    scans = bench["scans"].to_list()
    per_patient = {}
    for s in scans:
        per_patient[s["patient_id"]] = per_patient.get(s["patient_id"], 0) + 1
    assert min(per_patient.values()) >= 3
    assert (smoke_bench / "README.md").read_text().startswith("# medforget benchmark")


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), ratio=st.sampled_from([0.01, 0.05, 0.1, 0.25, 0.5]))
def test_split_invariants_hold_for_any_seed_and_ratio(seed, ratio):
    with tempfile.TemporaryDirectory() as tmp:
        _check_invariants(Path(tmp) / "bench", seed, ratio)


def _check_invariants(out: Path, seed: int, ratio: float) -> None:
    meta = generate(preset_config("smoke"), seed=seed, forget_ratio=ratio, out=out)
    assert validate(out) == []
    n_finetune = preset_config("smoke").n_finetune
    assert len(meta["forget_patients"]) == max(1, round(ratio * n_finetune))
    bench = load_benchmark(out)
    forgotten = set(meta["forget_patients"])
    holdout = {s["patient_id"] for s in bench["scans"].to_list() if s["group"] == "holdout"}
    train_patients = set(bench["train"]["patient_id"])
    assert not holdout & train_patients
    assert set(bench["forget_privacy"]["patient_id"]) == forgotten
    assert not forgotten & set(bench["retain"]["patient_id"])
    assert set(bench["test_forget"].filter(lambda r: r["scenario"] == "privacy")["patient_id"]) == forgotten


@pytest.mark.parametrize("ratio", [0.0, -0.1, 0.51, 2.0])
def test_forget_ratio_outside_range_is_refused(tmp_path, ratio):
    with pytest.raises(MedforgetError, match="forget ratio"):
        generate(preset_config("smoke"), seed=0, forget_ratio=ratio, out=tmp_path / "x")
    assert not (tmp_path / "x").exists()


def _demo_images(clean: bool = False, n_patients: int = 30, cue: str = "marker"):
    pop = build_population(preset_config("demo").with_overrides(identity_cue=cue), seed=3)
    out = []
    for spec in pop.scans:
        p = spec.patient
        if p.group != "finetune" or int(p.patient_id[1:]) > n_patients:
            continue
        args = (p.modality, p.region, p.signature, spec.lesion(), spec.acquisition, spec.quality, 64)
        out.append((spec, render(*args).astype(np.float32), render(*args, clean=True).astype(np.float32)))
    return out


@pytest.mark.parametrize("cue", IDENTITY_CUES)
def test_scans_of_one_patient_are_more_alike_than_scans_of_two_patients(cue):
    """Same modality and region in both cases, so only the patient's anatomical signature can tell them apart,
    in either identity cue's world (benchmarks/identity_cue.py measures the same on all pretrain patients).

    Distance: mean absolute difference of blurred, standardised images (blur and standardisation discount
    acquisition noise and gain, which vary by design)."""
    items = _demo_images(cue=cue)

    def feat(img):
        f = gaussian_filter(img, 1.5)
        return ((f - f.mean()) / (f.std() + 1e-6)).ravel()

    feats = [feat(img) for _, img, _ in items]
    same, other, nearest_is_same = [], [], []
    for i, (a, _, _) in enumerate(items):
        dists = []
        for j, (b, _, _) in enumerate(items):
            if i == j or (a.patient.modality, a.patient.region) != (b.patient.modality, b.patient.region):
                continue
            d = float(np.mean(np.abs(feats[i] - feats[j])))
            dists.append((d, b.patient is a.patient))
            if j > i:
                (same if a.patient is b.patient else other).append(d)
        if any(not s for _, s in dists):
            nearest_is_same.append(min(dists)[1])
    assert len(same) > 20 and len(other) > 20
    assert np.mean(same) < 0.8 * np.mean(other)
    assert np.mean(nearest_is_same) > 0.75  # a scan's nearest neighbour is mostly the same patient's scan


def test_quality_levels_are_ordered_by_a_measured_noise_score():
    """PSNR against the same scan rendered without degradation falls from high to medium to low quality."""
    psnr = {"high": [], "medium": [], "low": []}
    for spec, img, clean in _demo_images():
        mse = float(np.mean((img - clean) ** 2))
        psnr[spec.quality].append(10 * np.log10(255 ** 2 / max(mse, 1e-6)))
    means = {q: np.mean(v) for q, v in psnr.items()}
    assert all(len(v) >= 5 for v in psnr.values())
    assert means["high"] > means["medium"] + 3 > means["low"] + 6


def test_private_values_are_well_formed_and_unique(smoke_bench):
    bench = load_benchmark(smoke_bench)
    rows = [r for r in bench["train"].to_list() + bench["holdout"].to_list() if r["is_private"] and r["task"] == "open"]
    values: dict[str, dict[str, str]] = {}
    for r in rows:
        values.setdefault(r["field"], {})[r["patient_id"]] = r["answer"]
    names = list(values["full_name"].values())
    assert len(set(names)) == len(names)
    assert all(len(v.split("-")) == 3 and v[:2] in ("19", "20") for v in values["date_of_birth"].values())
    assert all(v.startswith("(") and len(v) == 14 for v in values["phone"].values())
    assert all(v.startswith("MRN-") for v in values["mrn"].values())
    assert all("@" in v for v in values["email"].values())


def test_no_question_that_names_a_patient_holds_its_answer(smoke_bench):
    """Every record value of a patient is apart from the patient's name tokens (even inside a word), and
    neither the name nor the sex its first name implies is asked by name; both are asked about a scan."""
    bench = load_benchmark(smoke_bench)
    rows = [r for split in ("train", "holdout", "pretrain", "test_retain", "test_forget") for r in bench[split].to_list()]
    names = {r["patient_id"]: name_tokens(r["answer"]) for r in rows if r["field"] == "full_name"}
    named = [r for r in rows if r["condition"] == "name"]
    assert {r["field"] for r in named} == set(RECORD_FIELDS) - {"full_name", "sex"}
    assert {"full_name", "sex"} <= {r["field"] for r in rows if r["condition"] == "image"}
    given_away = [r["id"] for r in rows if r["scenario"] == "privacy" and r["field"] != "full_name"
                  and any(token in r["answer"].lower() for token in names[r["patient_id"]])]
    assert given_away == []
    kin = [r["answer"] for r in named if r["field"] == "next_of_kin"]
    assert kin and all(k.endswith(tuple(f"({relation})" for relation in RELATIONS)) for k in kin)


def test_pretraining_teaches_refusals_on_out_of_scope_requests_only(smoke_bench):
    """The base model must be able to say a refusal (refusal-based unlearning trains toward one), but no
    split may pair a refusal with a question about a patient."""
    from medforget.evaluate.metrics.refusal import REFUSAL_POOL, is_refusal

    bench = load_benchmark(smoke_bench)
    refusals = [r for r in bench["pretrain"].to_list() if r["field"] == "out_of_scope"]
    assert {r["answer"] for r in refusals} == set(REFUSAL_POOL)
    assert all(is_refusal(r["answer"]) and not r["patient_id"] and not r["scan_ids"] for r in refusals)
    for split in ("train", "test_retain", "test_forget", "holdout", "general"):
        assert not any(is_refusal(a) for a in bench[split]["answer"]), split


def test_pretraining_asks_about_other_people_in_every_wording(smoke_bench):
    """The base model learns record questions on pretrain people only: every wording (the test splits'
    held-out ones included) and every scan, about people no evaluated split mentions."""
    bench = load_benchmark(smoke_bench)
    records = [r for r in bench["pretrain"].to_list() if r["scenario"] == "privacy"]
    people = {r["patient_id"] for r in records}
    assert len(people) == preset_config("smoke").pretrain_records
    groups = {s["patient_id"]: s["group"] for s in bench["scans"].to_list()}
    assert {groups[p] for p in people} == {"pretrain"}
    assert {r["condition"] for r in records} == {"name", "image"} and {r["task"] for r in records} == {"mcq", "open", "cloze"}
    evaluated = ("train", "test_retain", "test_forget", "holdout", "general")
    held_out = {r["template_id"] for split in ("test_retain", "test_forget") for r in bench[split].to_list()
                if r["scenario"] == "privacy"}
    assert held_out & {r["template_id"] for r in records}  # pretraining knows the held-out wordings
    for split in evaluated:  # ... but never pairs them with an evaluated patient in a training split
        assert not people & set(bench[split]["patient_id"]), split
    values = {r["answer"] for r in records if r["is_private"] and r["field"] not in ("sex", "hospital", "attending_physician")}
    seen = {a for split in evaluated for a in bench[split]["answer"]}
    assert values and not values & seen
    training = {r["template_id"] for split in ("train", "holdout") for r in bench[split].to_list()}
    assert not held_out & training


def test_generator_digest_changes_with_the_generator_source(tmp_path):
    """A run's cache keys its benchmark on this digest: a benchmark from older generator code is regenerated."""
    from medforget.world import build

    source = Path(build.__file__).parent
    copy = tmp_path / "world"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert build.generator_digest(copy) == build.generator_digest()
    splits = copy / "splits.py"
    splits.write_text(splits.read_text() + "\n# one more line\n")
    assert build.generator_digest(copy) != build.generator_digest()

"""`generate --forget-level`: the synthetic world's forget requests at the four levels of the hierarchy."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medforget.cli import app
from medforget.errors import MedforgetError
from medforget.world.build import generate
from medforget.world.config import preset_config
from medforget.world.storage import load_benchmark
from medforget.world.validate import validate


@pytest.mark.parametrize("level", ["scan", "field", "hospital"])
def test_every_level_is_valid_and_resolves_its_request(level: str, smoke_bench: Path, tmp_path: Path) -> None:
    meta = generate(preset_config("smoke"), seed=0, forget_ratio=0.1, out=tmp_path / level, forget_level=level)
    assert validate(tmp_path / level) == []
    bench, patient_level = load_benchmark(tmp_path / level), load_benchmark(smoke_bench)
    assert meta["forget_level"] == level and meta["forget_request"]["level"] == level
    forget = bench["forget_privacy"].to_list()
    assert forget
    if level != "hospital":  # the same training set, split otherwise
        assert sorted(bench["train"]["id"]) == sorted(patient_level["train"]["id"])
    by_patient = defaultdict(set)
    for r in forget:
        by_patient[r["patient_id"]].add(r["field"] if level == "field" else tuple(r["scan_ids"]))
    retained = {r["patient_id"] for r in bench["retain"]}
    if level == "hospital":
        sites = meta["hierarchy"]["institutions"]
        assert len({sites[p] for p in meta["forget_patients"]}) == 1 and not retained & set(meta["forget_patients"])
        assert meta["forget_request"]["sibling_patients"] == []
    else:
        assert all(len(v) == 1 for v in by_patient.values())  # one detail, or one scan, of each chosen patient
        assert meta["forget_patients"] == [] and set(by_patient) <= retained  # the rest of their record stays
        assert set(meta["forget_request"]["sibling_patients"]) == set(by_patient)
    if level == "field":
        facts = {(r["patient_id"], r["field"]) for r in forget}
        assert {(r["patient_id"], r["field"]) for r in bench["test_forget"] if r["scenario"] == "privacy"} == facts


def test_patient_level_is_the_default_and_names_its_siblings(smoke_bench: Path) -> None:
    meta = load_benchmark(smoke_bench).meta
    assert meta["forget_level"] == "patient" and meta["forget_request"]["patients"] == meta["forget_patients"]


def test_unknown_level_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(MedforgetError, match="unknown forget level 'ward'"):
        generate(preset_config("smoke"), seed=0, forget_ratio=0.1, out=tmp_path / "x", forget_level="ward")
    result = CliRunner().invoke(app, ["generate", "--preset", "smoke", "--forget-level", "ward", "--out", str(tmp_path / "y")])
    assert result.exit_code == 2 and "unknown forget level" in result.output

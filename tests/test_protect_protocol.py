"""`protect-eval` on the smoke benchmark: every condition, the budget, reproducibility, and bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import medforget.protect.protocol as protocol
from medforget.cli import app
from medforget.errors import MedforgetError
from medforget.protect.protocol import (
    BLANK, IDENTIFIERS, NONE, PROTECTED, RESULT_FILE, TABLE_FILE, ProtectEvalConfig, chosen_scans, run_protect_eval, select_items,
    summarise, training_images,
)
from medforget.protect.transforms import TRANSFORMS, get_transform
from medforget.train.stages import init_model
from medforget.world import load_benchmark

pytestmark = pytest.mark.usefixtures("one_thread")
FAST = {"steps": 2, "max_patients": 2}  # 2 holdout patients, 4 training scans, 4 fine-tuning steps per condition
runner = CliRunner()


@pytest.fixture(scope="module")
def model(smoke_bench: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return init_model(smoke_bench, tmp_path_factory.mktemp("start") / "base")


@pytest.fixture(scope="module")
def full(smoke_bench: Path, model: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("runs") / "full"
    return out, run_protect_eval(smoke_bench, model, out, ProtectEvalConfig(**FAST))


def figures(document: dict) -> dict:
    """Everything but the timings."""
    return {k: v for k, v in document.items() if k != "seconds"}


def left_behind(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir())


def test_writes_the_json_and_a_table_with_every_condition(full: tuple[Path, dict]) -> None:
    out, document = full
    assert sorted(p.name for p in out.iterdir()) == [RESULT_FILE, TABLE_FILE]
    assert json.loads((out / RESULT_FILE).read_text()) == document
    names = [NONE, PROTECTED, *(f"{PROTECTED}+{t}" for t in TRANSFORMS), BLANK]
    assert list(document["conditions"]) == names
    table = (out / TABLE_FILE).read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| condition")]
    assert [row.split(" | ")[0].removeprefix("| ").split(" (=")[0] for row in rows] == names
    f = len(IDENTIFIERS)  # items per patient and scan: one per identifying field (per task when asked)
    assert document["items"] == {"patients": 2, "train_scans": 4, "protected_scans": 4, "test_scans": 2, "train_rows": 4 * f,
                                 "test_rows": 6 * f, "test_generated": 4 * f, "test_mcq": 2 * f}
    for row in document["conditions"].values():
        assert 0 <= row["leak_exact"] <= row["leak_partial"] <= 1 and 0 <= row["mcq_acc"] <= 1
        assert set(row["leak_by_field"]) == set(IDENTIFIERS)
        assert row["train_steps"] == 4
    # grey scans: grayscale is the identity, so that condition is the protected one, not trained again
    assert document["conditions"]["protected+grayscale"]["same_as"] == PROTECTED
    assert "Post-processing (6)" in table and "Floor: fine-tuned on blank scans" in table
    assert document["conditions"][BLANK]["holds"] is None and document["conditions"][BLANK]["protected_scans"] == 0


def test_the_perturbation_stays_within_eps(full: tuple[Path, dict]) -> None:
    _, document = full
    protected = document["conditions"][PROTECTED]
    assert protected["protected_scans"] == 4 and 1 <= protected["quality"]["linf_max"] <= 8
    assert protected["quality"]["psnr_min"] > 20 and protected["quality"]["ssim_min"] > 0.5
    assert document["protection"]["linf_max"] <= 8 and document["protection"]["count"] == 4
    assert document["conditions"][NONE]["quality"]["psnr_mean"] is None


def test_no_private_value_is_written(smoke_bench: Path, full: tuple[Path, dict]) -> None:
    out, _ = full
    bench = load_benchmark(smoke_bench)
    values = {r["answer"] for r in bench["holdout"].to_list() if r["is_private"] and len(r["answer"]) > 4}
    text = (out / RESULT_FILE).read_text() + (out / TABLE_FILE).read_text()
    assert values and not [v for v in values if v in text]


def test_same_seed_same_figures(smoke_bench: Path, model: Path, full: tuple[Path, dict], tmp_path: Path) -> None:
    """A second run with one post-processing reproduces the full run's figures for the conditions they share."""
    _, document = full
    again = run_protect_eval(smoke_bench, model, tmp_path / "again", ProtectEvalConfig(**FAST, transforms=("jpeg75",), blank=False))
    shared = [NONE, PROTECTED, "protected+jpeg75"]
    assert list(again["conditions"]) == shared
    assert {k: again["conditions"][k] for k in shared} == {k: document["conditions"][k] for k in shared}
    assert again["protection"] == document["protection"] and again["items"] == document["items"]


def test_ratio_zero_trains_on_the_clean_scans(smoke_bench: Path, model: Path, full: tuple[Path, dict], tmp_path: Path) -> None:
    out = tmp_path / "zero"
    result = runner.invoke(app, ["protect-eval", "--bench", str(smoke_bench), "--model", str(model), "--out", str(out),
                                 "--ratio", "0", "--transforms", "blur1", "--steps", "2", "--max-patients", "2", "--no-blank"])
    assert result.exit_code == 0, result.output
    assert "| protected+blur1 (= none) | 0 / 4 |" in result.output
    document = json.loads((out / RESULT_FILE).read_text())
    assert document["protection"] is None and document["items"]["protected_scans"] == 0
    baseline = full[1]["conditions"][NONE]
    for name, row in document["conditions"].items():
        assert row["protected_scans"] == 0 and row["quality"]["linf_max"] is None
        assert row["same_as"] == (None if name == NONE else NONE)
        assert (row["leak_exact"], row["mcq_acc"], row["final_loss"]) == (baseline["leak_exact"], baseline["mcq_acc"], baseline["final_loss"])


def test_training_images_swap_only_the_protected_scans(smoke_bench: Path) -> None:
    bench = load_benchmark(smoke_bench)
    clean = {sid: bench.image(sid) for sid in ("P00011-S1", "P00011-S2")}
    assert chosen_scans(list(clean), 0.0, seed=0) == [] and chosen_scans(list(clean), 0.5, seed=0) in (["P00011-S1"], ["P00011-S2"])
    untouched = training_images(clean, {}, get_transform("jpeg50"))
    assert all(untouched[sid] is clean[sid] for sid in clean)
    marked = clean["P00011-S1"].point(lambda v: min(v + 3, 255))
    seen = training_images(clean, {"P00011-S1": marked}, get_transform("blur1"))
    assert seen["P00011-S2"] is clean["P00011-S2"]
    assert np.array_equal(np.asarray(seen["P00011-S1"]), np.asarray(get_transform("blur1")(marked)))
    assert seen["P00011-S1"].size == clean["P00011-S1"].size and seen["P00011-S1"].mode == "L"


def test_items_fine_tune_on_training_scans_and_ask_on_test_scans(smoke_bench: Path) -> None:
    bench = load_benchmark(smoke_bench)
    items = select_items(bench, "holdout", seed=0)
    roles = {s["scan_id"]: s["role"] for s in bench["scans"].select_columns(["scan_id", "role"]).to_list()}
    assert {roles[s] for r in items.train_rows for s in r["scan_ids"]} == {"train"}
    assert {roles[s] for r in items.test_rows for s in r["scan_ids"]} == {"test"}
    assert all(r["is_private"] and r["condition"] == "image" for r in items.train_rows + items.test_rows)
    # one wording per field and task for every patient: only the scan says who is asked about
    wordings: dict[tuple[str, str], set[str]] = {}
    for r in items.test_rows:
        wordings.setdefault((r["field"], r["task"]), set()).add(r["question"])
    assert all(len(w) == 1 for w in wordings.values())
    mcq = [r for r in items.test_rows if r["task"] == "mcq"]
    assert mcq and all(r["options"][r["correct_index"]] == r["answer"] for r in mcq)
    assert select_items(bench, "holdout", seed=0).test_rows == items.test_rows


def test_summary_halving_rule() -> None:
    def row(leak: float, transform: str | None = None) -> dict:
        return {"leak_exact": leak, "mcq_acc": 0.5, "transform": transform}

    table = {NONE: row(0.4), PROTECTED: row(0.1), "protected+jpeg50": row(0.3, "jpeg50"), "protected+blur1": row(0.2, "blur1")}
    summary = summarise(table, 0.5)
    assert (table[PROTECTED]["leak_ratio"], table[PROTECTED]["holds"]) == (0.25, True)
    assert (table["protected+blur1"]["holds"], table["protected+jpeg50"]["holds"]) == (True, False)
    post = summary["post_processing"]
    assert post["worst"] == "protected+jpeg50" and post["worst_leak_ratio"] == 0.75 and post["broken"] == ["protected+jpeg50"]
    assert post["mean_leak"] == 0.25 and post["holds_all"] is False and summary["protected_holds"] is True
    assert summary["floor_leak"] is None and summary["protected_excess_ratio"] is None
    with_floor = summarise({NONE: row(0.4), PROTECTED: row(0.3), BLANK: row(0.2)}, 0.5)
    assert with_floor["floor_leak_ratio"] == 0.5 and with_floor["protected_excess_ratio"] == 0.5
    nothing = summarise({NONE: row(0.0), PROTECTED: row(0.0)}, 0.5)
    assert nothing["protected_holds"] is None and nothing["post_processing"] is None


@pytest.mark.parametrize(("args", "message"), [
    (["--transforms", "jpeg10"], "unknown transform 'jpeg10'"),
    (["--ratio", "1.5"], "protection ratio must be in [0, 1]"),
    (["--field", "primary_diagnosis"], "fields must be private fields"),
    (["--patients", "general"], "unknown patient group"),
    (["--eps", "eight"], "--eps must be a number"),
    (["--model", "{tmp}/missing"], "model folder not found"),
    (["--bench", "{tmp}/missing"], "does not exist"),
])
def test_bad_inputs_are_one_line_and_leave_nothing(smoke_bench: Path, model: Path, tmp_path: Path, args: list[str], message: str) -> None:
    parent = tmp_path / "parent"
    parent.mkdir()
    base = ["protect-eval", "--bench", str(smoke_bench), "--model", str(model), "--out", str(parent / "out")]
    result = runner.invoke(app, base + [a.replace("{tmp}", str(tmp_path)) for a in args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert left_behind(parent) == []


def test_a_failure_midway_leaves_no_output(smoke_bench: Path, model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args, **kwargs):
        raise MedforgetError("fine-tuning failed")

    monkeypatch.setattr(protocol, "_attack", broken)
    with pytest.raises(MedforgetError, match="fine-tuning failed"):
        run_protect_eval(smoke_bench, model, tmp_path / "out", ProtectEvalConfig(**FAST))
    assert left_behind(tmp_path) == []
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    with pytest.raises(MedforgetError, match="not empty"):
        run_protect_eval(smoke_bench, model, tmp_path / "out", ProtectEvalConfig(**FAST))
    with pytest.raises(MedforgetError, match="one of the inputs"):
        run_protect_eval(smoke_bench, model, model, ProtectEvalConfig(**FAST), overwrite=True)
    assert left_behind(tmp_path) == ["out"] and left_behind(tmp_path / "out") == ["keep.txt"]


def test_only_identifying_fields_are_attacked_unless_asked(smoke_bench):
    bench = load_benchmark(smoke_bench)
    assert {r["field"] for r in select_items(bench, "holdout", seed=0).train_rows} == set(IDENTIFIERS)
    assert {r["field"] for r in select_items(bench, "holdout", seed=0, fields=["sex"]).test_rows} == {"sex"}
    with pytest.raises(MedforgetError, match="private fields"):
        ProtectEvalConfig(fields=("primary_diagnosis",)).check()


def write_scans(bench: Path, scan_ids: list[str], folder: Path, change: int = 0) -> None:
    """The clean scans as PNG files named <scan_id>.png, every pixel moved by `change` grey levels."""
    folder.mkdir(parents=True, exist_ok=True)
    loaded = load_benchmark(bench)
    for sid in scan_ids:
        pixels = np.asarray(loaded.image(sid)).astype(np.int16) + change
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / f"{sid}.png")


def given_cfg(folder: Path) -> ProtectEvalConfig:
    return ProtectEvalConfig(max_patients=2, transforms=(), blank=False, protected_dir=str(folder))


def test_given_images_are_evaluated_as_they_are(smoke_bench: Path, model: Path, tmp_path: Path) -> None:
    scans = select_items(load_benchmark(smoke_bench), "holdout", seed=0, max_patients=2).train_scans
    write_scans(smoke_bench, scans, tmp_path / "shifted", change=3)
    document = run_protect_eval(smoke_bench, model, tmp_path / "out", given_cfg(tmp_path / "shifted"))
    row = document["conditions"][PROTECTED]
    assert row["quality"]["linf_max"] == 3 and row["same_as"] is None and document["protection"] is None
    assert document["settings"]["encoders"] == [] and document["settings"]["protected_dir"] == str(tmp_path / "shifted")
    assert (tmp_path / "out" / TABLE_FILE).read_text().startswith(f"# protect-eval: images from `{tmp_path / 'shifted'}`")
    write_scans(smoke_bench, scans, tmp_path / "clean")  # the clean scans themselves: the same model as `none`
    same = run_protect_eval(smoke_bench, model, tmp_path / "again", given_cfg(tmp_path / "clean"))
    assert same["conditions"][PROTECTED]["same_as"] == NONE


def test_given_images_must_match_their_scans(smoke_bench: Path, model: Path, tmp_path: Path) -> None:
    scans = select_items(load_benchmark(smoke_bench), "holdout", seed=0, max_patients=2).train_scans
    folder = tmp_path / "given"
    write_scans(smoke_bench, scans, folder)
    (folder / f"{scans[0]}.png").unlink()
    with pytest.raises(MedforgetError, match=f"{scans[0]}.png: missing"):
        run_protect_eval(smoke_bench, model, tmp_path / "out", given_cfg(folder))
    Image.new("L", (7, 7)).save(folder / f"{scans[0]}.png")
    with pytest.raises(MedforgetError, match=f"{scans[0]}.png: L 7x7, but the clean scan is L"):
        run_protect_eval(smoke_bench, model, tmp_path / "out", given_cfg(folder))
    (folder / f"{scans[0]}.png").write_text("not an image")
    with pytest.raises(MedforgetError, match=f"{scans[0]}.png: cannot decode image"):
        run_protect_eval(smoke_bench, model, tmp_path / "out", given_cfg(folder))
    with pytest.raises(MedforgetError, match="one of the inputs"):  # replacing it would delete the images
        run_protect_eval(smoke_bench, model, folder, given_cfg(folder), overwrite=True)
    with pytest.raises(MedforgetError, match="no protection to optimise against an encoder"):
        run_protect_eval(smoke_bench, model, tmp_path / "out", given_cfg(folder), encoders=[model])
    assert left_behind(tmp_path) == ["given"]
    result = runner.invoke(app, ["protect-eval", "--bench", str(smoke_bench), "--model", str(model), "--out",
                                 str(tmp_path / "out"), "--protected-dir", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "protected images folder" in result.output and "does not exist" in result.output
    assert left_behind(tmp_path) == ["given"]


def test_the_attacker_trains_the_vision_tower_only_when_asked() -> None:
    assert ProtectEvalConfig().train_config("demo").train_vision is False  # as the demo preset's fine-tuning
    assert ProtectEvalConfig(train_vision=True).train_config("demo").train_vision is True
    assert ProtectEvalConfig(train_vision=False).train_config("standard").train_vision is False

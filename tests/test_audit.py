"""`medforget audit` of a tiny random model of a family medforget did not fine-tune (no training.json),
on imported DICOM studies: figures per group, absent figures with reasons, redaction, the release gate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dicom_files import ramp, write_dicom
from families import FAMILIES
from typer.testing import CliRunner

from medforget.cli import app
from medforget.importers import import_dataset
from medforget.train.stages import benchmark_texts
from medforget.world.storage import load_benchmark

pytestmark = pytest.mark.usefixtures("one_thread")
FAMILY = "gemma3"


@pytest.fixture(scope="module")
def hospital(tmp_path_factory) -> tuple[Path, Path]:
    """Three trained patients (one to forget) and one never trained on, as DICOM, imported; and a tiny model."""
    root = tmp_path_factory.mktemp("hospital")
    for i, (pid, name) in enumerate((("MRN001", "Doe^Jane"), ("MRN002", "Roe^Ann"), ("MRN003", "Poe^Eve"))):
        write_dicom(root / "studies" / pid / "1.dcm", ramp() + i, patient_id=pid, name=name, study_uid=f"1.2.{i}")
    write_dicom(root / "never" / "1.dcm", ramp()[::-1], patient_id="MRN900", name="Kim^Lee", study_uid="1.9.9")
    (root / "forget.txt").write_text("MRN002\n")
    data = root / "data"
    import_dataset("dicom", root / "studies", data, forget=root / "forget.txt", nonmembers=[root / "never"])
    model, processor = FAMILIES[FAMILY].build(benchmark_texts(load_benchmark(data)), root / "model")
    if not (root / "model" / "config.json").is_file():
        model.save_pretrained(root / "model")
        processor.save_pretrained(root / "model")
    return data, root / "model"


def audit(*args: str):
    return CliRunner().invoke(app, ["audit", *args, "--max-new-tokens", "3", "--batch-size", "8"])


def test_audit_reports_every_group_and_redacts(hospital: tuple[Path, Path], tmp_path: Path) -> None:
    data, model = hospital
    result = audit("--model", str(model), "--data", str(data), "--out", str(tmp_path / "a"))
    assert result.exit_code == 0, result.output + repr(result.exception)
    report = json.loads((tmp_path / "a" / "audit.json").read_text())
    assert report["request"]["level"] == "patient" and report["groups"]["forget"]["patients"] == 1
    assert report["groups"]["nonmembers"]["patients"] == 1 and report["groups"]["forget"]["items"] > 0
    assert report["groups"]["forget"]["leak_exact_without_image"] is not None  # each image item asked without it
    assert 0 <= report["criterion"]["auroc"] <= 1 and "min_k_pp" in report["membership"]
    assert [p["patient_id"] for p in report["patients"]] == ["P0002"] and report["patients"][0]["rank"] == 1
    assert "forget.mcq_acc" in report["absent"]  # absent with its reason, never 0
    page = (tmp_path / "a" / "audit.html").read_text()
    assert "Roe Ann" not in page and "MRN002" not in page and "AUROC" in page
    assert "AUROC" in result.output


def test_fail_above_gates_a_release(hospital: tuple[Path, Path], tmp_path: Path) -> None:
    data, model = hospital
    report = audit("--model", str(model), "--data", str(data), "--out", str(tmp_path / "a"), "--fail-above", "1")
    assert report.exit_code == 0
    leak = json.loads((tmp_path / "a" / "audit.json").read_text())["groups"]["forget"]["leak_exact"]
    gate = audit("--model", str(model), "--data", str(data), "--out", str(tmp_path / "b"), "--fail-above", "-0.5")
    assert gate.exit_code == 2 and "--fail-above must be a rate" in gate.output
    if leak > 0:  # a random model rarely leaks; the gate trips only when it does
        assert audit("--model", str(model), "--data", str(data), "--out", str(tmp_path / "c"), "--fail-above", "0").exit_code == 1


def test_a_field_request_is_audited_with_its_siblings(hospital: tuple[Path, Path], tmp_path: Path) -> None:
    data, model = hospital
    forget = tmp_path / "forget.json"
    forget.write_text('{"fields": [{"patient_id": "P0001", "field": "address"}]}')
    result = audit("--model", str(model), "--data", str(data), "--out", str(tmp_path / "a"), "--forget", str(forget))
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "a" / "audit.json").read_text())
    assert report["request"]["level"] == "field" and report["groups"]["siblings"]["patients"] == 1
    assert report["groups"]["forget"]["items"] == 2  # its open and its cloze item


def test_without_nonmembers_membership_is_absent_with_its_reason(hospital: tuple[Path, Path], tmp_path: Path) -> None:
    data, model = hospital
    studies = data.parent / "studies"
    import_dataset("dicom", studies, tmp_path / "data", forget=data.parent / "forget.txt")
    result = audit("--model", str(model), "--data", str(tmp_path / "data"), "--out", str(tmp_path / "a"))
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "a" / "audit.json").read_text())
    assert report["membership"] == {} and report["criterion"]["auroc"] is None
    assert "--nonmembers" in report["absent"]["membership"]


def test_unlearn_and_evaluate_on_imported_data_then_audit_again(hospital: tuple[Path, Path], tmp_path: Path) -> None:
    """The hospital walk-through on a model without training.json: unlearn, evaluate (missing splits skipped), audit."""
    data, model = hospital
    runner = CliRunner()
    result = runner.invoke(app, ["unlearn", "--model", str(model), "--bench", str(data), "--method", "grad_diff", "--scenario", "privacy",
                                 "--out", str(tmp_path / "unlearned"), "--set", "max_steps=2", "--set", "batch_size=4"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert json.loads((tmp_path / "unlearned" / "unlearning.json").read_text())["train_config"]["train_vision"] is False
    result = runner.invoke(app, ["evaluate", "--model", str(tmp_path / "unlearned"), "--bench", str(data), "--out",
                                 str(tmp_path / "eval.json"), "--max-new-tokens", "2"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    metrics = json.loads((tmp_path / "eval.json").read_text())
    assert set(metrics["splits"]) == {"forget_privacy", "retain", "holdout"} and "test_forget" in metrics["skipped"]
    assert "membership" in metrics and "skipped" in result.output
    assert metrics["siblings"]["n"] > 0  # the request's siblings (the same hospital's other patients), a figure of their own
    assert audit("--model", str(tmp_path / "unlearned"), "--data", str(data), "--out", str(tmp_path / "after")).exit_code == 0


def test_audit_of_a_lora_adapter_folder(hospital: tuple[Path, Path], tmp_path: Path) -> None:
    """An adapter folder is loaded onto the base it names and merged; its weights come from safetensors."""
    from peft import LoraConfig, get_peft_model

    from medforget.models.loading import load_model

    data, model = hospital
    base, _ = load_model(model)
    adapted = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    adapted.save_pretrained(tmp_path / "adapter")
    assert json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"] == str(model)
    result = audit("--model", str(tmp_path / "adapter"), "--data", str(data), "--out", str(tmp_path / "a"))
    assert result.exit_code == 0, result.output + repr(result.exception)
    (tmp_path / "adapter" / "adapter_model.safetensors").rename(tmp_path / "adapter" / "adapter_model.bin")
    refused = audit("--model", str(tmp_path / "adapter"), "--data", str(data), "--out", str(tmp_path / "b"))
    assert refused.exit_code == 2 and "safetensors only" in refused.output


def test_run_on_your_data_audits_unlearns_audits_and_resumes(hospital: tuple[Path, Path], tmp_path: Path) -> None:
    data, model = hospital
    args = ["run", "--data", str(data), "--model", str(model), "--out", str(tmp_path / "run"), "--methods", "ga",
            "--set", "max_steps=1", "--set", "batch_size=4", "--workers", "1"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output + repr(first.exception)
    summary = json.loads((tmp_path / "run" / "summary" / "summary.json").read_text())
    assert [r["model"] for r in summary["rows"]] == ["vanilla", "ga"] and "4 stage(s) run" in first.output
    assert (tmp_path / "run" / "audits" / "ga" / "audit.html").is_file()
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "0 stage(s) run, 4 up to date" in again.output
    assert CliRunner().invoke(app, ["run", "--data", str(data), "--out", str(tmp_path / "x")]).exit_code == 2  # --model needed

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


def test_unlearn_and_evaluate_a_lora_adapter_folder(hospital: tuple[Path, Path], tmp_path: Path) -> None:
    """unlearn and evaluate take an adapter folder as audit does: its base, then the adapter (merged)."""
    from peft import LoraConfig, get_peft_model

    from medforget.models.loading import load_model

    data, model = hospital
    base, _ = load_model(model)
    get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj", "v_proj"])).save_pretrained(tmp_path / "adapter")
    runner = CliRunner()
    result = runner.invoke(app, ["unlearn", "--model", str(tmp_path / "adapter"), "--bench", str(data), "--method", "ga",
                                 "--scenario", "privacy", "--out", str(tmp_path / "unlearned"), "--set", "max_steps=1",
                                 "--set", "batch_size=4"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    record = json.loads((tmp_path / "unlearned" / "unlearning.json").read_text())
    assert record["model"] == str((tmp_path / "adapter").resolve()) and record["steps"] == 1
    assert (tmp_path / "unlearned" / "config.json").is_file()  # a whole model: the adapter merged into its base
    result = runner.invoke(app, ["evaluate", "--model", str(tmp_path / "adapter"), "--bench", str(data),
                                 "--out", str(tmp_path / "eval.json"), "--max-new-tokens", "2", "--splits", "forget_privacy"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert json.loads((tmp_path / "eval.json").read_text())["splits"]["forget_privacy"]["n"] == len(load_benchmark(data)["forget_privacy"])


def test_evaluate_against_an_oracle(hospital: tuple[Path, Path], tmp_path: Path) -> None:
    """--oracle adds the synthetic run's comparison; a model against itself is indistinguishable from its oracle,
    and a figure without its inputs (no multiple-choice items here) is absent with the reason."""
    data, model = hospital
    args = ["evaluate", "--model", str(model), "--bench", str(data), "--max-new-tokens", "2"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "with.json"), "--oracle", str(model)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    cmp = json.loads((tmp_path / "with.json").read_text())["oracle"]
    assert cmp["oracle"] == str(model) and cmp["scenario"] == "privacy"
    assert cmp["privleak"] and all(abs(v) < 1e-9 for v in cmp["privleak"].values())
    assert all(abs(v) < 1e-9 for v in cmp["refusal"]["oracle_gap"].values())
    assert cmp["forget_quality"] == {"forget_privacy": None} and any("truth ratios" in n for n in cmp["notes"])
    assert "against the oracle" in result.output and "PrivLeak" in result.output
    plain = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "without.json")])
    assert plain.exit_code == 0 and "oracle" not in json.loads((tmp_path / "without.json").read_text())


def test_a_hub_id_that_cannot_be_resolved_is_one_line(hospital: tuple[Path, Path], tmp_path: Path) -> None:
    """A hub id goes through transformers' from_pretrained; offline (or unknown) it fails in one line, before any output."""
    data, _ = hospital
    missing = "nobody-here/no-such-vlm"
    commands = {
        "unlearn": ["unlearn", "--model", missing, "--bench", str(data), "--method", "ga", "--scenario", "privacy", "--out", str(tmp_path / "u")],
        "evaluate": ["evaluate", "--model", missing, "--bench", str(data), "--out", str(tmp_path / "e.json")],
        "audit": ["audit", "--model", missing, "--data", str(data), "--out", str(tmp_path / "a")],
    }
    for name, args in commands.items():
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, (name, result.output, result.exception)
        assert f"'{missing}'" in result.output and "Hugging Face model id" in result.output, (name, result.output)
        assert "Traceback" not in result.output and not list(tmp_path.iterdir()), name


def test_run_on_your_data_audits_unlearns_audits_and_resumes(hospital: tuple[Path, Path], tmp_path: Path) -> None:
    data, model = hospital
    args = ["run", "--data", str(data), "--model", str(model), "--out", str(tmp_path / "run"), "--methods", "ga",
            "--set", "max_steps=1", "--set", "batch_size=4", "--workers", "1"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output + repr(first.exception)
    summary = json.loads((tmp_path / "run" / "summary" / "summary.json").read_text())
    assert [r["model"] for r in summary["rows"]] == ["vanilla", "ga"] and "4 stage(s) run" in first.output
    assert "--oracle" in summary["absent"]["oracle comparison"] and "PrivLeak" not in summary["rows"][0]
    assert (tmp_path / "run" / "audits" / "ga" / "audit.html").is_file()
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "0 stage(s) run, 4 up to date" in again.output
    assert CliRunner().invoke(app, ["run", "--data", str(data), "--out", str(tmp_path / "x")]).exit_code == 2  # --model needed


def test_run_on_your_data_with_an_oracle(hospital: tuple[Path, Path], tmp_path: Path) -> None:
    """--oracle adds the comparison columns; the vanilla model against itself as oracle differs by nothing, and
    forget quality is absent with its reason (no multiple-choice item in DICOM imports), never 0."""
    data, model = hospital
    args = ["run", "--data", str(data), "--model", str(model), "--out", str(tmp_path / "run"), "--methods", "ga",
            "--set", "max_steps=1", "--set", "batch_size=4", "--workers", "1", "--oracle", str(model)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    summary = json.loads((tmp_path / "run" / "summary" / "summary.json").read_text())
    vanilla = summary["rows"][0]
    assert vanilla["model"] == "vanilla" and vanilla["PrivLeak"] == 0 and vanilla["leak gap"] == 0 and vanilla["refusal gap"] == 0
    assert vanilla["forget quality"] is None and "multiple-choice" in summary["absent"]["vanilla: forget quality"]
    assert (tmp_path / "run" / "audits" / "oracle" / "scores.parquet").is_file() and "PrivLeak" in result.output
    assert "oracle comparison" not in summary["absent"]
    page = (tmp_path / "run" / "summary" / "report.html").read_text()  # absent as absent, with the reason, never 0
    assert "<i>absent</i>" in page and "vanilla: forget quality" in page and "multiple-choice" in page
    assert page.count('href="../audits/') == 2 and "PrivLeak" in page
    refused = CliRunner().invoke(app, ["run", "--preset", "smoke", "--out", str(tmp_path / "x"), "--oracle", str(model)])
    assert refused.exit_code == 2 and "--oracle goes with --data" in refused.output

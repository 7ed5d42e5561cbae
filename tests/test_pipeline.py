"""`medforget run` end to end on `smoke`: stages are cached, and a run killed midway resumes to the same results."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medforget.errors import MedforgetError
from medforget.pipeline import RunConfig

RUN = [sys.executable, "-m", "medforget", "run", "--preset", "smoke", "--methods", "ga", "--methods", "grad_diff"]


def _run(out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200")
    return subprocess.run([*RUN, "--out", str(out), *extra], capture_output=True, text=True, timeout=900, env=env)


def _metrics(run_dir: Path) -> dict:
    """Every evaluated figure of a run, without timings (which differ between runs)."""
    out = {}
    for path in sorted((run_dir / "eval").glob("*.json")):
        data = json.loads(path.read_text())
        out[path.stem] = data["splits"], data.get("membership")
    return out


@pytest.mark.slow
def test_killed_run_resumes_skipping_finished_stages_with_identical_results(tmp_path):
    whole = tmp_path / "whole"
    result = _run(whole)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("report.html", "leaderboard.md", "results.json", "run.yaml"):
        assert (whole / name).is_file()

    killed = tmp_path / "killed"
    proc = subprocess.Popen([*RUN, "--out", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    marker = killed / "stages" / "unlearn-ga-privacy.pending"
    deadline = time.time() + 600
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the run never reached the unlearning stage"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "stages" / "unlearn-ga-privacy.json").exists()

    resumed = _run(killed)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for stage in ("generate", "init", "pretrain", "vanilla"):  # the oracles may still have run beside ga
        assert f"{stage}: up to date, skipped" in resumed.stderr
    assert "unlearn:ga@privacy: resuming" in resumed.stderr or "unlearn:ga@privacy: running" in resumed.stderr
    assert _metrics(killed) == _metrics(whole)

    again = _run(killed)
    assert again.returncode == 0 and "0 stage(s) run" in again.stdout
    forced = _run(killed, "--force", "eval")
    assert forced.returncode == 0
    assert "eval:vanilla: running" in forced.stderr and "oracle@privacy: up to date, skipped" in forced.stderr


def test_config_file_and_bad_settings(tmp_path):
    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text("preset: smoke\nmethods: [ga]\nscenario: incorrect\n")
    cfg = RunConfig.from_yaml(cfg_file, seed=3)
    assert (cfg.preset, cfg.methods, cfg.scenarios, cfg.seed) == ("smoke", ["ga"], ["incorrect"], 3)
    cfg_file.write_text("preset: smoke\nlearning_rate: 3\n")
    with pytest.raises(MedforgetError, match="unknown setting"):
        RunConfig.from_yaml(cfg_file)
    with pytest.raises(MedforgetError, match="unknown scenario"):
        RunConfig(preset="smoke", scenarios=["privacy", "everything"])
    assert RunConfig(preset="smoke").scenarios == ["privacy", "incorrect"]
    with pytest.raises(MedforgetError):
        RunConfig(preset="smoke", methods=["nope"])


def test_unknown_scenario_is_one_line_naming_the_choices(tmp_path):
    from typer.testing import CliRunner

    from medforget.cli import app

    result = CliRunner().invoke(app, ["run", "--preset", "smoke", "--scenario", "everything", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "everything" in lines[0] and "privacy, incorrect, both" in lines[0], result.output
    assert not (tmp_path / "r").exists()


def test_methods_default_to_every_registered_one():
    from medforget.methods.registry import all_methods

    every = {m.name for m in all_methods()} - {"retrain"}
    assert set(RunConfig(preset="smoke").methods) == every and set(RunConfig(preset="smoke", methods=["all"]).methods) == every
    assert RunConfig(preset="smoke", methods=["kl", "ga", "kl"]).methods == ["kl", "ga"] and RunConfig(preset="smoke", methods=[]).methods == []
    with pytest.raises(MedforgetError, match="unknown method"):
        RunConfig(preset="smoke", methods=["gaa"])


def test_without_a_generated_world_the_defaults_leave_out_what_needs_one():
    from medforget.methods.registry import get_method
    from medforget.pipeline import method_list

    on_data = method_list(None, world=False)
    assert "mimic" not in on_data and "ga" in on_data and method_list(["all"], world=False) == on_data
    assert all(not get_method(m).needs_world for m in on_data) and get_method("mimic").needs_world

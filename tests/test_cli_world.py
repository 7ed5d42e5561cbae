"""The generate / validate / show commands, as a user runs them."""

import shutil

import pytest
from typer.testing import CliRunner

import medforget.world.build as build
from medforget.cli import app
from medforget.world import load_benchmark

runner = CliRunner()


def test_generate_validate_show(tmp_path):
    out = tmp_path / "bench"
    result = runner.invoke(app, ["generate", "--preset", "smoke", "--seed", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "forget_privacy" in result.output
    result = runner.invoke(app, ["validate", str(out)])
    assert result.exit_code == 0 and "is valid" in result.output
    sheet = tmp_path / "sheet.png"
    result = runner.invoke(app, ["show", str(out), "--split", "forget_privacy", "--n", "20", "--sheet", str(sheet)])
    assert result.exit_code == 0, result.output
    assert sheet.stat().st_size > 1000
    private = {r["answer"] for r in load_benchmark(out)["forget_privacy"].to_list() if r["is_private"] and len(r["answer"]) > 3}
    printed = result.output.replace("\n", " ")
    assert "[REDACTED:" in printed
    assert not [v for v in private if v in printed]


@pytest.mark.parametrize("args, message", [
    (["generate", "--preset", "huge", "--out", "{tmp}/x"], "unknown preset"),
    (["generate", "--preset", "smoke", "--forget-ratio", "0.9", "--out", "{tmp}/x"], "forget ratio"),
    (["generate", "--preset", "smoke", "--identity-cue", "tattoo", "--out", "{tmp}/x"], "unknown identity cue"),
    (["validate", "{tmp}/missing"], "does not exist"),
    (["show", "{tmp}/missing"], "does not exist"),
])
def test_user_mistakes_give_one_line_and_exit_2(tmp_path, args, message):
    result = runner.invoke(app, [a.replace("{tmp}", str(tmp_path)) for a in args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_existing_output_is_never_half_overwritten(tmp_path, monkeypatch):
    out = tmp_path / "bench"
    assert runner.invoke(app, ["generate", "--preset", "smoke", "--out", str(out)]).exit_code == 0
    before = sorted(p.name for p in out.iterdir())
    result = runner.invoke(app, ["generate", "--preset", "smoke", "--seed", "2", "--out", str(out)])
    assert result.exit_code == 2 and "--overwrite" in result.output

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(build, "save", broken_save)
    result = runner.invoke(app, ["generate", "--preset", "smoke", "--seed", "2", "--out", str(out), "--overwrite"])
    assert result.exit_code != 0
    assert sorted(p.name for p in out.iterdir()) == before
    assert load_benchmark(out).meta["seed"] == 0
    assert [p.name for p in tmp_path.iterdir()] == ["bench"]  # no temporary folder left behind
    monkeypatch.undo()
    result = runner.invoke(app, ["generate", "--preset", "smoke", "--seed", "2", "--out", str(out), "--overwrite"])
    assert result.exit_code == 0 and load_benchmark(out).meta["seed"] == 2
    shutil.rmtree(out)

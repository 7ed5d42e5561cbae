"""The protection frontier (benchmarks/protect_frontier.py, protect/frontier.py) and its surrogate encoders on smoke."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import medforget.protect.protocol as protocol
from medforget.errors import MedforgetError
from medforget.protect.attacks import to_pixels
from medforget.protect.encoder import VisionEncoder
from medforget.protect.frontier import FRONTIER_JSON, FRONTIER_PLOT, FRONTIER_TABLE, FrontierConfig, run_frontier, targets
from medforget.protect.surrogate import SURROGATE_FILE, build_surrogate
from medforget.world import load_benchmark
from scripts import load_script, smoke_run_folder

pytestmark = pytest.mark.usefixtures("one_thread")
FAST = ["--max-patients", "2", "--steps", "2", "--transforms", "jpeg75", "--surrogate-epochs", "1"]


@pytest.fixture(scope="module")
def run_dir(smoke_bench: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return smoke_run_folder(smoke_bench, tmp_path_factory.mktemp("frontier") / "smoke-run")


def script():
    return load_script("protect_frontier")


@pytest.fixture(scope="module")
def frontier(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, int]:
    """The script end to end on two budgets, counting the fine-tunings."""
    out = tmp_path_factory.mktemp("out") / "frontier"
    attack, calls = protocol._attack, []

    def counted(*args, **kwargs):
        calls.append(args[-2])  # the condition's name
        return attack(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(protocol, "_attack", counted)
        script().main([str(run_dir), "--out", str(out), "--eps", "2/255,8/255", *FAST])
    return out, json.loads((out / FRONTIER_JSON).read_text()), len(calls)


def test_the_frontier_writes_its_table_json_and_plot(frontier: tuple[Path, dict, int], capsys) -> None:
    out, document, _ = frontier
    assert sorted(p.name for p in out.iterdir()) == ["cells", FRONTIER_JSON, FRONTIER_TABLE, FRONTIER_PLOT]
    assert (out / FRONTIER_PLOT).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = document["rows"]
    assert [(r["eps_pixels"], r["protector"]) for r in rows] == [(2, "white-box"), (2, "transfer"), (8, "white-box"), (8, "transfer")]
    table = (out / FRONTIER_TABLE).read_text().splitlines()
    body = [line for line in table if line.startswith("| smoke-run (marker) |")]
    assert len(body) == 4 and all("targeted" in line for line in body)
    for row in rows:
        cell = json.loads((out / row["cell"] / protocol.RESULT_FILE).read_text())
        assert cell["summary"]["unprotected_leak"] == row["unprotected_leak"]
        assert list(cell["conditions"]) == ["none", "protected", "protected+jpeg75", "blank"]
        assert 0 <= row["unprotected_ci"][0] <= row["unprotected_leak"] <= row["unprotected_ci"][1] <= 1
        assert row["linf_max"] <= row["eps_pixels"]
    by = {(r["eps_pixels"], r["protector"]): r for r in rows}
    assert by[(8, "white-box")]["psnr_mean"] < by[(2, "white-box")]["psnr_mean"]  # a larger budget is spent
    assert by[(8, "white-box")]["psnr_min"] >= 35.0  # the floor holds
    assert len(document["targets"]) == 2  # one line per protector at eps 8/255


def test_none_and_blank_are_fine_tuned_once_per_world(frontier: tuple[Path, dict, int]) -> None:
    _, document, calls = frontier
    cells = len(document["rows"])
    assert calls == 2 + 2 * cells  # none and blank once; protected and protected+jpeg75 in each cell
    nones = {json.dumps(json.loads((frontier[0] / r["cell"] / protocol.RESULT_FILE).read_text())["conditions"]["none"],
                        sort_keys=True) for r in document["rows"]}
    assert len(nones) == 1


def test_transfer_is_optimised_on_the_surrogate_not_the_attacker(frontier: tuple[Path, dict, int], run_dir: Path) -> None:
    out, document, _ = frontier
    surrogate = out.with_name("frontier.surrogates") / "smoke-run" / "seed1"
    for row in document["rows"]:
        expected = str(run_dir / "models" / "vanilla") if row["protector"] == "white-box" else str(surrogate)
        assert row["encoders"] == [expected]
    record = json.loads((surrogate / SURROGATE_FILE).read_text())
    assert record["seed"] == 1 and record["warmup"]["epochs"] == 1 and record["seconds"] > 0
    assert document["surrogates"]["smoke-run"][0]["reused"] is False


def test_a_surrogate_differs_from_the_attackers_tower(smoke_bench: Path, run_dir: Path, tmp_path: Path) -> None:
    one = build_surrogate(smoke_bench, tmp_path / "s1", seed=1, epochs=1)
    again = build_surrogate(smoke_bench, tmp_path / "s1-again", seed=1, epochs=1)
    assert one["result"] == again["result"] and one["identity_cue"] == "marker"
    bench = load_benchmark(smoke_bench)
    scans = to_pixels(np.stack([np.asarray(bench.image(s))[..., None] for s in bench["scans"]["scan_id"][:6]]),
                      torch.device("cpu"))
    attacker = VisionEncoder.load(run_dir / "models" / "vanilla")
    surrogate, twin = VisionEncoder.load(tmp_path / "s1"), VisionEncoder.load(tmp_path / "s1-again")
    with torch.no_grad():
        a, s, t = attacker.embed(scans), surrogate.embed(scans), twin.embed(scans)
    assert torch.equal(s, t)  # same seed, same surrogate
    assert not torch.allclose(a, s, atol=1e-3)
    tower = {k: v for k, v in attacker.model.state_dict().items() if "vision_tower" in k}
    other = surrogate.model.state_dict()
    assert tower and all(not torch.equal(v, other[k]) for k, v in tower.items() if v.dim() > 1)


def test_surrogates_and_attacks_are_reused_only_when_they_match(run_dir: Path, tmp_path: Path, monkeypatch) -> None:
    cfg = FrontierConfig(eps=(8 / 255,), protectors=("transfer",), steps=1, max_patients=2, transforms=(), blank=False,
                         max_steps=1, surrogate_epochs=1)
    reuse = tmp_path / "attacks.json"
    first = run_frontier([run_dir], tmp_path / "a", cfg, surrogates_dir=tmp_path / "cache", reuse_file=reuse)
    assert len(json.loads(reuse.read_text())) == 2  # none and protected
    attack, calls = protocol._attack, []
    monkeypatch.setattr(protocol, "_attack", lambda *a, **k: calls.append(a[-2]) or attack(*a, **k))
    second = run_frontier([run_dir], tmp_path / "b", cfg, surrogates_dir=tmp_path / "cache", reuse_file=reuse)
    assert calls == []  # every attack came from the file
    assert first["surrogates"]["smoke-run"][0]["reused"] is False and second["surrogates"]["smoke-run"][0]["reused"] is True
    assert first["rows"] == second["rows"]
    run_frontier([run_dir], tmp_path / "d", FrontierConfig(**{**cfg.__dict__, "max_steps": 2}),
                 surrogates_dir=tmp_path / "cache", reuse_file=reuse)
    assert calls == ["none", "protected"]  # another fine-tuning length: nothing to reuse
    with pytest.raises(MedforgetError, match="another benchmark or warm-up"):
        run_frontier([run_dir], tmp_path / "c", FrontierConfig(**{**cfg.__dict__, "surrogate_epochs": 2}),
                     surrogates_dir=tmp_path / "cache")
    assert not (tmp_path / "c").exists()


def test_two_surrogates_make_an_ensemble(run_dir: Path, tmp_path: Path) -> None:
    cfg = FrontierConfig(eps=(4 / 255,), protectors=("transfer",), steps=1, max_patients=2, transforms=(), blank=False,
                         max_steps=1, surrogates=2, surrogate_epochs=1)
    document = run_frontier([run_dir], tmp_path / "out", cfg)
    seeds = tmp_path / "out.surrogates" / "smoke-run"
    assert document["rows"][0]["encoders"] == [str(seeds / "seed1"), str(seeds / "seed2")]
    assert [r["seed"] for r in document["surrogates"]["smoke-run"]] == [1, 2]


def test_the_target_is_read_at_eps_8_with_its_psnr_floor() -> None:
    def row(eps: int, protector: str, ratio: float | None, jpeg: float | None, psnr_min: float) -> dict:
        return {"world": "w", "method": "decoy", "eps": eps / 255, "protector": protector, "protected_ratio": ratio,
                "jpeg75_ratio": jpeg, "psnr_min": psnr_min}

    rows = [row(4, "white-box", 0.1, 0.1, 40.0), row(8, "white-box", 0.5, 0.71, 35.0), row(8, "transfer", 0.6, 0.3, 34.9),
            row(8, "transfer", None, None, 36.0)]
    assert [(t["protector"], t["psnr_ok"], t["holds"], t["jpeg75_holds"]) for t in targets(rows)] == [
        ("white-box", True, True, False), ("transfer", False, False, True), ("transfer", True, None, None)]


@pytest.mark.parametrize(("args", "message"), [
    (["--eps", "eight"], "--eps must be a number"),
    (["--method", "blur"], "methods must be distinct"),
    (["--transforms", "sepia"], "unknown transform"),
    (["--surrogates", "0"], "surrogates must be >= 1"),
    (["--step-fraction", "2"], "step fraction"),
])
def test_bad_input_is_one_line(run_dir: Path, tmp_path: Path, capsys, args: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        script().main([str(run_dir), "--out", str(tmp_path / "out"), *args])
    text = str(exit_info.value.code)
    assert text.startswith("error: ") and message in text and "\n" not in text
    assert not (tmp_path / "out").exists()


def test_bad_folders_are_one_line(run_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    cases = [([str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")], "no benchmark"),
             ([str(run_dir), str(run_dir)], "give --out"),
             ([str(run_dir), "--out", str(tmp_path / "full")], "not empty"),
             ([str(run_dir), "--start", "oracle", "--out", str(tmp_path / "o")], "model folder not found")]
    for argv, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            script().main(argv)
        assert message in str(exit_info.value.code) and "\n" not in str(exit_info.value.code)
    with pytest.raises(MedforgetError, match="seed must be >= 0"):
        build_surrogate(run_dir / "bench", tmp_path / "s", seed=-1)

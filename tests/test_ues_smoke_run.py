"""The UES of real models: a `smoke` run whose fine-tuning is long enough for the tiny model to learn the
records (the preset's own 16 steps learn too little for any signal to pass the gap rule), scored with the
degenerate reference rows: what the report shows a reader must rank them as issue 15 asks."""

import json
from dataclasses import replace

import pytest

import medforget.train.config as train_config
from medforget.pipeline import RunConfig, run_pipeline

#: UES bounds per model (issue 15): (lowest, highest)
BOUNDS = {"base": (0.0, 0.15), "vanilla": (0.0, 0.05), "oracle": (0.95, 1.0), "random-gibberish": (0.0, 0.10),
          "always-refuse": (0.0, 0.30)}


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    smoke = train_config.STAGE_PRESETS["smoke"]
    learning = replace(smoke, pretrain=replace(smoke.pretrain, max_steps=1, save_every=0),
                       finetune=replace(smoke.finetune, max_steps=600, lr=3e-3, save_every=0),
                       vision=replace(smoke.vision, epochs=1))
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(train_config.STAGE_PRESETS, "smoke", learning)
        out = tmp_path_factory.mktemp("ues-run")
        run_pipeline(RunConfig(preset="smoke", methods=[], forget_ratio=0.5, workers=1, robustness=False), out,
                     log=lambda message: None)
    return json.loads((out / "results.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["privacy", "incorrect"])
def test_real_models_and_references_score_within_their_bounds(results, scenario):
    comparison = results["comparison"][scenario]
    seen = {}
    for name, entry in comparison.items():
        kind = name.split("@")[0]
        if kind in BOUNDS:
            seen[kind] = entry["ues"][scenario]["ues"]
    assert set(seen) == set(BOUNDS), seen
    for kind, value in seen.items():
        low, high = BOUNDS[kind]
        assert value is not None and low <= value <= high, (scenario, kind, value, comparison[f"{kind}@{scenario}" if kind == "oracle" else kind]["ues"][scenario]["skipped"])

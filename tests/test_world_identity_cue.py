"""The `anatomy` identity cue (`generate --identity-cue anatomy`): no marker, identity in faint anatomical
traits that every scan of a patient repeats; and the default `marker` world left as it was."""

import hashlib
import json

import numpy as np
import pytest

from medforget.errors import MedforgetError
from medforget.world import load_benchmark
from medforget.world.build import generate
from medforget.world.config import preset_config
from medforget.world.population import build_population, render_all
from medforget.world.scans import render
from medforget.world.validate import validate

#: sha256 over the PNG bytes of every `smoke` seed-0 scan of the marker world, as rendered before the identity
#: cue existed. Change it only with a change meant to alter the marker world's images.
MARKER_SMOKE_SCANS = "ed95112a74ede4f78dc24d6ec4754ed3c52ccf98981d52460fba2f128c936341"

TRAITS = ("outline", "organ_form", "bone", "old_lesions", "texture")


def _anatomy(preset: str = "smoke", seed: int = 0):
    return build_population(preset_config(preset).with_overrides(identity_cue="anatomy"), seed)


def _neutral(sig: dict) -> dict:
    """An anatomy signature with every trait set to the marker world's plain anatomy."""
    return {**sig, "outline": [[0.0, 0.0]] * len(sig["outline"]), "organ_form": [[1.2, 0.0]] * len(sig["organs"]),
            "bone": [0.9, 1.0], "old_lesions": [], "texture": []}


def test_marker_world_scans_are_unchanged():
    pop = build_population(preset_config("smoke"), seed=0)
    digest = hashlib.sha256(b"".join(render_all(pop.scans, 32, workers=1))).hexdigest()
    assert digest == MARKER_SMOKE_SCANS


def test_anatomy_world_draws_no_marker_and_keeps_everything_else():
    """Take the traits out of an anatomy scan and it is the marker world's scan with its marker too small to
    cover a pixel: the same patient, acquisition and noise, and nothing drawn in the marker's place."""
    marker, anatomy = build_population(preset_config("smoke"), seed=4), _anatomy(seed=4)
    for m, a in zip(marker.scans, anatomy.scans):
        pm, pa = m.patient, a.patient
        assert m.acquisition == a.acquisition and not any(k.startswith("marker") for k in pa.signature)
        assert a.metadata()["marker_shape"] == "" and a.metadata()["marker_slot"] == -1
        args = (pm.modality, pm.region, m.lesion(), m.acquisition, m.quality, 32)
        no_marker = render(pm.modality, pm.region, {**pm.signature, "marker_size": 1e-9}, *args[2:])
        assert np.array_equal(render(pa.modality, pa.region, _neutral(pa.signature), *args[2:]), no_marker)
        assert not np.array_equal(render(pa.modality, pa.region, pa.signature, *args[2:]), no_marker)


def test_each_patient_has_its_own_traits_shared_by_all_its_scans():
    pop = _anatomy("demo", seed=1)
    traits = [json.dumps([p.signature[t] for t in TRAITS]) for p in pop.patients]
    assert len(set(traits)) == len(traits)
    for p in pop.patients[:50]:
        assert {json.dumps(s.patient.signature, sort_keys=True) for s in pop.scans_of(p.patient_id)} == {json.dumps(p.signature, sort_keys=True)}


def test_traits_carry_identity_beyond_the_shared_anatomy():
    """Same modality and region: two clean scans of one patient (other acquisitions) are closer with the traits
    than the same two patients' scans without them would be apart; i.e. the traits, not only body axes and
    organ places, separate patients: the gap between other-patient and same-patient distance grows."""
    pop = _anatomy("demo", seed=2)
    by_look: dict = {}
    for s in pop.scans:
        if s.patient.group == "pretrain":
            by_look.setdefault((s.patient.modality, s.patient.region), []).append(s)
    group = max(by_look.values(), key=len)[:40]

    def gap(signature) -> float:
        imgs = [render(s.patient.modality, s.patient.region, signature(s.patient.signature), s.lesion(), s.acquisition,
                       s.quality, 32, clean=True).astype(np.float32) for s in group]
        same, other = [], []
        for i in range(len(group)):
            for j in range(i + 1, len(group)):
                d = float(np.mean(np.abs(imgs[i] - imgs[j])))
                (same if group[i].patient is group[j].patient else other).append(d)
        assert len(same) >= 10
        return np.mean(other) - np.mean(same)

    assert gap(lambda sig: sig) > 1.2 * gap(_neutral)


def test_anatomy_world_is_deterministic_valid_and_recorded(tmp_path):
    cfg = preset_config("smoke").with_overrides(identity_cue="anatomy")
    a = generate(cfg, seed=5, forget_ratio=0.1, out=tmp_path / "a")
    b = generate(cfg, seed=5, forget_ratio=0.1, out=tmp_path / "b")
    c = generate(cfg, seed=6, forget_ratio=0.1, out=tmp_path / "c")
    marker = generate(preset_config("smoke"), seed=5, forget_ratio=0.1, out=tmp_path / "m")
    assert a["content_hash"] == b["content_hash"] != c["content_hash"]
    assert a["content_hash"] != marker["content_hash"]
    files = lambda folder: {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
    assert files(tmp_path / "a") == files(tmp_path / "b")
    assert validate(tmp_path / "a") == []
    bench = load_benchmark(tmp_path / "a")
    assert bench.meta["identity_cue"] == "anatomy" and bench.meta["config"]["identity_cue"] == "anatomy"
    assert marker["identity_cue"] == "marker"
    assert "--identity-cue anatomy" in (tmp_path / "a" / "README.md").read_text()
    fields = set(bench["pretrain"]["field"])
    assert "marker_shape" not in fields and "marker_position" not in fields
    assert "marker_shape" in set(load_benchmark(tmp_path / "m")["pretrain"]["field"])


def test_unknown_identity_cue_is_refused():
    from medforget.pipeline import RunConfig

    with pytest.raises(MedforgetError, match="unknown identity cue 'tattoo'"):
        preset_config("smoke").with_overrides(identity_cue="tattoo")
    with pytest.raises(MedforgetError, match="unknown identity cue"):
        RunConfig(preset="smoke", identity_cue="tattoo")
    assert RunConfig(preset="smoke", identity_cue="anatomy").identity_cue == "anatomy"

"""protect_folder end to end: image folders and benchmarks in, PNGs and protect.json out, atomically."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medforget.errors import MedforgetError
from medforget.models.loading import load_model
from medforget.models.tiny import build_tiny_model
from medforget.protect.attacks import METHODS, Protector
from medforget.protect.encoder import VisionEncoder
from medforget.protect.io import MANIFEST, protect_folder
from medforget.protect.quality import psnr, ssim
from medforget.world import load_benchmark

TEXTS = ["What imaging modality is shown in this scan?", "CT MRI X-ray ultrasound", "nodule cyst mass"] * 10
GREY = [f"scan_{i}.png" for i in range(6)]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> VisionEncoder:
    model, processor = load_model(build_tiny_model(TEXTS, tmp_path_factory.mktemp("tiny"), image_size=32), device="cpu")
    return VisionEncoder(model, processor, name="tiny")


@pytest.fixture()
def images(tmp_path: Path) -> Path:
    """Six 64-px grey scans (one of them 48x40), one RGB photo."""
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, name in enumerate(GREY):
        shape = (40, 48) if i == 5 else (64, 64)
        Image.fromarray(rng.integers(30, 220, shape, dtype=np.uint8)).save(folder / name)
    Image.fromarray(rng.integers(0, 256, (50, 60, 3), dtype=np.uint8)).save(folder / "photo.png")
    return folder


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path), dtype=np.int64)


def left_behind(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name != "in")


@pytest.mark.parametrize("method", METHODS)
def test_every_method_keeps_names_sizes_modes_and_the_budget(
    encoder: VisionEncoder, images: Path, tmp_path: Path, method: str
) -> None:
    out = tmp_path / "out"
    manifest = protect_folder(images, out, encoder, method=method, steps=3, batch_size=4)
    inputs = sorted(p.name for p in images.iterdir())
    assert sorted(p.name for p in out.iterdir()) == sorted([*inputs, MANIFEST])
    for name in inputs:
        before, after = Image.open(images / name), Image.open(out / name)
        assert (after.size, after.mode, after.format) == (before.size, before.mode, "PNG")
        change = np.abs(pixels(out / name) - pixels(images / name)).max()
        assert 1 <= change <= 8
    assert manifest == json.loads((out / MANIFEST).read_text())
    assert (manifest["method"], manifest["eps_pixels"], manifest["steps"], manifest["seed"]) == (method, 8, 3, 0)
    assert manifest["encoders"] == ["tiny"] and manifest["source_kind"] == "folder"
    assert manifest["count"] == 7 and manifest["modes"] == {"L": 6, "RGB": 1} and manifest["unchanged"] == 0
    assert manifest["linf_max"] <= 8 and 0 < manifest["linf_mean"] <= 8
    assert 25 < manifest["psnr_mean"] < 60 and 0.5 < manifest["ssim_mean"] < 1
    assert sorted(r["file"] for r in manifest["images"]) == inputs
    assert manifest.get("target") == ("default" if method == "targeted" else None)
    photo = next(r for r in manifest["images"] if r["file"] == "photo.png")
    before, after = pixels(images / "photo.png").astype(np.uint8), pixels(out / "photo.png").astype(np.uint8)
    assert photo["mode"] == "RGB" and photo["linf"] == np.abs(after.astype(int) - before).max()
    assert photo["psnr"] == pytest.approx(psnr(before, after), abs=1e-4)
    assert photo["ssim"] == pytest.approx(ssim(before, after), abs=1e-6)


def test_same_seed_same_bytes_other_seed_other_bytes(encoder: VisionEncoder, images: Path, tmp_path: Path) -> None:
    runs = {name: tmp_path / name for name in ("a", "b", "c")}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        protect_folder(images, runs[name], encoder, method="antithetical", steps=2, seed=seed, batch_size=3)
    for file in ["photo.png", *GREY]:
        assert (runs["a"] / file).read_bytes() == (runs["b"] / file).read_bytes()
        assert (runs["a"] / file).read_bytes() != (runs["c"] / file).read_bytes()


def test_progress_reports_every_batch(encoder: VisionEncoder, images: Path, tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    protect_folder(images, tmp_path / "out", encoder, method="targeted", steps=1, batch_size=2,
                   progress=lambda done, total: calls.append((done, total)))
    # files in name order, batches by shape: the RGB photo, five 64x64 grey scans as 2+2+1, the 48x40 one
    assert calls == [(1, 7), (3, 7), (5, 7), (6, 7), (7, 7)]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [("broken.png", None, "cannot decode image"), ("notes.txt", b"not an image", "not an image file"),
     ("fake.png", b"plain text, no PNG header", "cannot decode image")],
)
def test_bad_inputs_fail_naming_the_file_and_write_nothing(
    encoder: VisionEncoder, images: Path, tmp_path: Path, name: str, content: bytes | None, message: str
) -> None:
    data = (images / GREY[0]).read_bytes()[:200] if content is None else content  # a truncated PNG
    (images / name).write_bytes(data)
    with pytest.raises(MedforgetError, match=f"{name}.*{message}|{message}.*{name}"):
        protect_folder(images, tmp_path / "out", encoder, method="antithetical", steps=1)
    assert left_behind(tmp_path) == []


def test_a_batch_failing_after_others_succeeded_writes_nothing(
    encoder: VisionEncoder, images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    perturb = Protector.perturb

    def fail_on_third(self, indices, batch):
        calls.append(len(indices))
        if len(calls) == 3:
            raise MedforgetError("scan_3.png: the batch failed")
        return perturb(self, indices, batch)

    monkeypatch.setattr(Protector, "perturb", fail_on_third)
    with pytest.raises(MedforgetError, match="scan_3.png"):
        protect_folder(images, tmp_path / "out", encoder, method="antithetical", steps=1, batch_size=2)
    assert len(calls) == 3 and left_behind(tmp_path) == []


def test_unsupported_mode_is_named(encoder: VisionEncoder, images: Path, tmp_path: Path) -> None:
    Image.new("RGBA", (8, 8)).save(images / "alpha.png")
    with pytest.raises(MedforgetError, match="alpha.png: image mode RGBA is not supported"):
        protect_folder(images, tmp_path / "out", encoder, steps=1)
    assert left_behind(tmp_path) == []


def test_jpeg_inputs_become_png_and_clashing_stems_are_refused(encoder: VisionEncoder, images: Path, tmp_path: Path) -> None:
    Image.open(images / "photo.png").save(images / "holiday.JPG", quality=90)
    protect_folder(images, tmp_path / "out", encoder, method="targeted", steps=1)
    assert Image.open(tmp_path / "out" / "holiday.png").mode == "RGB"
    Image.open(images / "photo.png").save(images / "photo.jpg")
    with pytest.raises(MedforgetError, match="photo.jpg.*both be written as photo.png"):
        protect_folder(images, tmp_path / "out2", encoder, steps=1)


def test_output_folder_rules(encoder: VisionEncoder, images: Path, tmp_path: Path) -> None:
    with pytest.raises(MedforgetError, match="is the input folder"):
        protect_folder(images, images, encoder, steps=1)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(MedforgetError, match="not empty"):
        protect_folder(images, out, encoder, steps=1)
    protect_folder(images, out, encoder, steps=1, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / MANIFEST).is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MedforgetError, match="no images to protect"):
        protect_folder(empty, tmp_path / "out3", encoder, steps=1)


def test_benchmark_scans_by_id_and_patient(encoder: VisionEncoder, smoke_bench: Path, tmp_path: Path) -> None:
    bench = load_benchmark(smoke_bench)
    scans = bench["scans"]
    first, second = scans[0], next(row for row in scans if row["patient_id"] != scans[0]["patient_id"])
    patient_scans = [row["scan_id"] for row in scans if row["patient_id"] == second["patient_id"]]
    out = tmp_path / "out"
    manifest = protect_folder(smoke_bench, out, encoder, method="error_min", steps=2,
                              scan_ids=[first["scan_id"]], patient_ids=[second["patient_id"]])
    expected = sorted(f"{sid}.png" for sid in {first["scan_id"], *patient_scans})
    assert sorted(p.name for p in out.glob("*.png")) == expected
    assert manifest["source_kind"] == "benchmark" and manifest["count"] == len(expected)
    for name in expected:
        after = Image.open(out / name)
        clean = bench.image(name.removesuffix(".png"))
        assert after.mode == "L" and after.size == clean.size
        assert np.abs(np.asarray(after, dtype=int) - np.asarray(clean, dtype=int)).max() <= 8


def test_benchmark_filters_are_checked(encoder: VisionEncoder, smoke_bench: Path, images: Path, tmp_path: Path) -> None:
    with pytest.raises(MedforgetError, match="unknown scan id.*NOPE"):
        protect_folder(smoke_bench, tmp_path / "out", encoder, scan_ids=["NOPE"])
    with pytest.raises(MedforgetError, match="unknown patient id.*P99999"):
        protect_folder(smoke_bench, tmp_path / "out", encoder, patient_ids=["P99999"])
    with pytest.raises(MedforgetError, match="is not a benchmark"):
        protect_folder(images, tmp_path / "out", encoder, scan_ids=["S1"])
    assert not (tmp_path / "out").exists()

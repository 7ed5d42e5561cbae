"""The differentiable encoder and the PGD attacks on a tiny random LLaVA (32-px images, CPU)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from transformers import LlavaForConditionalGeneration
from transformers.image_utils import SizeDict

from medforget.errors import MedforgetError
from medforget.models.loading import load_model
from medforget.models.lora import LoraSettings, apply_lora
from medforget.models.tiny import build_tiny_model
from medforget.protect.attacks import (
    METHODS,
    Protector,
    decoy_image,
    default_target,
    eps_pixels,
    plan_batches,
    protect_batches,
    quantise,
    to_pixels,
)
from medforget.protect.encoder import EnsembleEncoder, VisionEncoder
from medforget.protect.quality import psnr_of

TEXTS = ["What imaging modality is shown in this scan?", "CT MRI X-ray ultrasound", "nodule cyst mass"] * 10


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[LlavaForConditionalGeneration, object]:
    return load_model(build_tiny_model(TEXTS, tmp_path_factory.mktemp("tiny"), image_size=32), device="cpu")


@pytest.fixture(scope="module")
def encoder(tiny) -> VisionEncoder:
    return VisionEncoder(*tiny, name="tiny")


def scans(n: int, size: int = 64, seed: int = 0) -> np.ndarray:
    """Smooth random grey blobs (not white noise), (n, H, W, 1) uint8."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    images = [
        np.clip(128 + 90 * np.sin(rng.uniform(2, 9) * xx + rng.uniform(0, 6)) * np.cos(rng.uniform(2, 9) * yy), 0, 255)
        for _ in range(n)
    ]
    return np.stack(images).astype(np.uint8)[..., None]


def as_batch(images: np.ndarray):
    return lambda indices: images[indices]


def test_preprocessing_matches_the_processor(tiny, encoder: VisionEncoder) -> None:
    processor = tiny[1]
    for size, tolerance in [(32, 1e-6), (64, 0.02)]:
        grey = scans(1, size)[0, ..., 0]
        expected = processor.image_processor(images=[Image.fromarray(grey)], return_tensors="pt")["pixel_values"]
        got = encoder.preprocess(torch.from_numpy(grey).float()[None, None] / 255)
        assert got.shape == expected.shape == (1, 3, 32, 32)
        assert (got - expected).abs().max() < tolerance


def test_embedding_is_differentiable_and_grey_equals_replicated_rgb(encoder: VisionEncoder) -> None:
    pixels = to_pixels(scans(2), encoder.device).requires_grad_(True)
    embeddings = encoder.embed(pixels)
    # one mean-pooled projected feature per image, of the language model's width
    assert embeddings.shape == (2, encoder.model.config.get_text_config().hidden_size)
    (grad,) = torch.autograd.grad(embeddings.sum(), pixels)
    assert grad.abs().sum() > 0
    with torch.no_grad():
        assert torch.allclose(encoder.embed(pixels), encoder.embed(pixels.expand(-1, 3, -1, -1)), atol=1e-6)


def test_lora_wrapped_model_gives_the_same_embeddings(tiny, encoder: VisionEncoder) -> None:
    wrapped = apply_lora(copy.deepcopy(tiny[0]), LoraSettings(r=2))
    pixels = to_pixels(scans(2), encoder.device)
    with torch.no_grad():
        assert torch.allclose(VisionEncoder(wrapped, tiny[1]).embed(pixels), encoder.embed(pixels), atol=1e-6)


def test_ensemble_cosine_is_the_mean_of_member_cosines(tiny, encoder: VisionEncoder) -> None:
    torch.manual_seed(1)
    other = VisionEncoder(LlavaForConditionalGeneration(tiny[0].config).eval(), tiny[1], name="other")
    ensemble = EnsembleEncoder([encoder, other])
    a, b = to_pixels(scans(1, seed=1), encoder.device), to_pixels(scans(1, seed=2), encoder.device)
    with torch.no_grad():
        cos = [F.cosine_similarity(m.embed(a), m.embed(b)).item() for m in (encoder, other)]
        together = F.cosine_similarity(ensemble.embed(a), ensemble.embed(b)).item()
    assert ensemble.names == ["tiny", "other"]
    assert together == pytest.approx(sum(cos) / 2, abs=1e-5)


def test_unsupported_processor_size_is_a_clear_error(tiny) -> None:
    processor = copy.deepcopy(tiny[1])
    processor.image_processor.size = SizeDict(longest_edge=64)
    with pytest.raises(MedforgetError, match="unsupported image processor size"):
        VisionEncoder(tiny[0], processor, name="odd")


def test_a_vision_tower_needing_more_than_pixels_is_a_clear_error(tiny, monkeypatch: pytest.MonkeyPatch) -> None:
    model = copy.deepcopy(tiny[0])

    def needs_image_sizes(pixel_values: torch.Tensor, image_sizes: torch.Tensor) -> None:
        raise AssertionError("unreachable")

    monkeypatch.setattr(model, "get_image_features", needs_image_sizes)
    with pytest.raises(MedforgetError, match=r"odd: its vision tower does not take \(N, 3, H, W\) pixel values"):
        VisionEncoder(model, tiny[1], name="odd")


def cosine_to(encoder: VisionEncoder, images: np.ndarray, direction: torch.Tensor) -> float:
    with torch.no_grad():
        return float((F.normalize(encoder.embed(to_pixels(images, encoder.device)), dim=-1) @ direction).mean())


def run(protector: Protector, images: np.ndarray, labels: list[str], batch_size: int = 4) -> np.ndarray:
    out = images.copy()
    batches = plan_batches([im.shape for im in images], batch_size)
    for indices, _, protected in protect_batches(protector, as_batch(images), batches, labels):
        out[indices] = protected
    return out


def test_antithetical_lowers_similarity_to_the_clean_mean(encoder: VisionEncoder) -> None:
    images = scans(6)
    protector = Protector(encoder, "antithetical", steps=10)
    protected = run(protector, images, [str(i) for i in range(6)])
    assert cosine_to(encoder, protected, protector.anchor) < cosine_to(encoder, images, protector.anchor) - 0.2


def test_targeted_raises_similarity_to_the_target(encoder: VisionEncoder) -> None:
    images = scans(6)
    protector = Protector(encoder, "targeted", steps=10)
    target = F.normalize(encoder.embed(to_pixels(default_target((32, 32))[None], encoder.device)), dim=-1)[0].detach()
    assert torch.allclose(protector.anchor, target, atol=1e-6)
    protected = run(protector, images, [str(i) for i in range(6)])
    assert cosine_to(encoder, protected, target) > cosine_to(encoder, images, target) + 0.1


def test_error_min_lowers_the_surrogate_loss(encoder: VisionEncoder) -> None:
    images = scans(6)
    labels = ["P1", "P1", "P2", "P2", "P3", "P3"]
    protector = Protector(encoder, "error_min", steps=10)
    protected = run(protector, images, labels)
    assert protector.labels.tolist() == [0, 0, 1, 1, 2, 2] and protector.prototypes.shape[0] == 3

    def surrogate_loss(batch: np.ndarray) -> float:
        with torch.no_grad():
            embeddings = F.normalize(encoder.embed(to_pixels(batch, encoder.device)), dim=-1)
            return float(protector.loss(embeddings, list(range(6))).mean())

    assert surrogate_loss(protected) < surrogate_loss(images) - 0.2


def test_decoy_pulls_each_patient_toward_its_own_decoy(encoder: VisionEncoder) -> None:
    images = scans(6)
    labels = ["P1", "P1", "P2", "P2", "P3", "P3"]
    protector = Protector(encoder, "decoy", steps=10)
    protected = run(protector, images, labels)
    decoys = protector.prototypes
    assert protector.labels.tolist() == [0, 0, 1, 1, 2, 2] and decoys.shape[0] == 3
    assert not torch.allclose(decoys[0], decoys[1]) and not torch.allclose(decoys[1], decoys[2])
    own = decoys[protector.labels]

    def to_own(batch: np.ndarray) -> float:
        with torch.no_grad():
            return float((F.normalize(encoder.embed(to_pixels(batch, encoder.device)), dim=-1) * own).sum(-1).mean())

    assert to_own(protected) > to_own(images) + 0.05
    grey = decoy_image((32, 32), 4)
    assert grey.shape == (32, 32, 3) and np.array_equal(grey[..., 0], grey[..., 2])
    assert np.array_equal(grey, decoy_image((32, 32), 4)) and not np.array_equal(grey, decoy_image((32, 32), 5))


def test_one_pseudo_label_falls_back_to_one_per_image(encoder: VisionEncoder) -> None:
    protector = Protector(encoder, "error_min", steps=0)
    protector.fit(as_batch(scans(3)), [[0, 1, 2]], ["P1", "P1", "P1"])
    assert protector.labels.tolist() == [0, 1, 2]


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(eps=st.floats(1 / 255, 24 / 255), method=st.sampled_from(METHODS), seed=st.integers(0, 1000))
def test_budget_holds_in_grey_levels(encoder: VisionEncoder, eps: float, method: str, seed: int) -> None:
    images = np.concatenate([scans(3), np.zeros((1, 64, 64, 1), np.uint8), np.full((1, 64, 64, 1), 255, np.uint8)])
    protected = run(Protector(encoder, method, eps=eps, steps=2, seed=seed), images, list("abcde"))
    change = np.abs(protected.astype(int) - images.astype(int))
    assert change.max() <= eps_pixels(eps) and change[:3].max() >= 1


@settings(max_examples=50, deadline=None)
@given(eps=st.floats(1 / 255, 1.0), seed=st.integers(0, 2**31))
def test_quantise_never_exceeds_the_integer_budget(eps: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    clean = rng.integers(0, 256, (2, 5, 7, 3), dtype=np.uint8)
    wild = torch.from_numpy(rng.uniform(-0.5, 1.5, (2, 3, 5, 7))).float()  # even out of range and over budget
    out = quantise(clean, wild, eps)
    assert out.dtype == np.uint8 and out.shape == clean.shape
    assert np.abs(out.astype(int) - clean.astype(int)).max() <= eps_pixels(eps)


def test_eps_pixels_survives_float_rounding() -> None:
    assert [eps_pixels(k / 255) for k in (1, 4, 8, 16)] == [1, 4, 8, 16]
    assert eps_pixels(0.03) == 7


def test_same_seed_same_bytes_other_seed_other_bytes(encoder: VisionEncoder) -> None:
    images = scans(4)
    first = run(Protector(encoder, "antithetical", steps=3, seed=5), images, list("abcd"))
    again = run(Protector(encoder, "antithetical", steps=3, seed=5), images, list("abcd"))
    other = run(Protector(encoder, "antithetical", steps=3, seed=6), images, list("abcd"))
    assert first.tobytes() == again.tobytes() and first.tobytes() != other.tobytes()


def test_zero_start_moves_at_most_steps_times_step_size(encoder: VisionEncoder) -> None:
    images = scans(3)
    untouched = run(Protector(encoder, "antithetical", steps=0, random_start=False), images, list("abc"))
    assert untouched.tobytes() == images.tobytes()
    protected = run(Protector(encoder, "targeted", steps=3, step_size=1 / 255, random_start=False), images, list("abc"))
    change = np.abs(protected.astype(int) - images.astype(int))
    assert 1 <= change.max() <= 3
    again = run(Protector(encoder, "targeted", steps=3, step_size=1 / 255, random_start=False, seed=9), images, list("abc"))
    assert again.tobytes() == protected.tobytes()  # no random start: the seed plays no part


def test_batches_group_by_shape_in_first_seen_order() -> None:
    shapes = [(4, 4, 1), (8, 8, 3), (4, 4, 1), (4, 4, 1), (8, 8, 3)]
    assert plan_batches(shapes, 2) == [[0, 2], [3], [1, 4]]


def test_default_target_is_fixed_and_rgb() -> None:
    target = default_target((40, 24))
    assert target.shape == (40, 24, 3) and target.dtype == np.uint8
    assert np.array_equal(target, default_target((40, 24))) and target.std() > 50


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"method": "blur"}, "unknown protection method"), ({"eps": 0.5 / 255}, "eps"), ({"steps": -1}, "steps"),
     ({"step_size": 0.0}, "step size"), ({"seed": -1}, "seed"), ({"min_psnr": 10.0}, "PSNR")],
)
def test_bad_settings_are_user_errors(encoder: VisionEncoder, kwargs: dict, message: str) -> None:
    with pytest.raises(MedforgetError, match=message):
        Protector(encoder, **kwargs)


def test_fit_is_required_before_perturbing(encoder: VisionEncoder) -> None:
    with pytest.raises(RuntimeError, match="fit"):
        Protector(encoder, "antithetical", steps=1).perturb([0], scans(1))


def test_custom_target_image(encoder: VisionEncoder) -> None:
    flat = Image.new("L", (32, 32), 200)
    protector = Protector(encoder, "targeted", target=flat)
    expected = F.normalize(encoder.embed(torch.full((1, 3, 32, 32), 200 / 255)), dim=-1)[0]
    assert torch.allclose(protector.anchor, expected.detach(), atol=1e-6)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(floor=st.floats(30.0, 45.0), method=st.sampled_from(METHODS), start=st.booleans())
def test_a_psnr_floor_holds_inside_the_eps_box(encoder: VisionEncoder, floor: float, method: str, start: bool) -> None:
    """Every written image keeps the floor and the L-inf budget, and the attack still moves its objective."""
    images = scans(4)
    protector = Protector(encoder, method, eps=8 / 255, steps=4, random_start=start, min_psnr=floor)
    protected = run(protector, images, ["P1", "P1", "P2", "P2"])
    change = protected.astype(int) - images.astype(int)
    assert np.abs(change).max() <= 8 and np.abs(change).max() >= 1
    assert all(psnr_of(c) >= floor for c in change)


def test_l2_steps_beat_sign_steps_at_the_same_psnr(encoder: VisionEncoder) -> None:
    """At 35 dB the PSNR-floor attack moves the target similarity more than sign steps shrunk to that PSNR."""
    images = scans(6)
    target = Protector(encoder, "targeted").anchor
    floor = run(Protector(encoder, "targeted", steps=10, step_size=2 / 255, random_start=False, min_psnr=35.0), images, list("abcdef"))
    sign = run(Protector(encoder, "targeted", steps=10, step_size=2 / 255, random_start=False), images, list("abcdef"))
    shrunk = np.stack([quantise(images[i:i + 1], to_pixels(sign[i:i + 1], encoder.device), 8 / 255, 35.0)[0] for i in range(6)])
    assert all(psnr_of(s.astype(int) - i.astype(int)) >= 35.0 for s, i in zip(shrunk, images))
    assert cosine_to(encoder, floor, target) > cosine_to(encoder, shrunk, target)

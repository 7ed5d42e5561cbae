"""Procedural grayscale scans.

Each patient has a persistent anatomical signature drawn in the patient's own frame; each acquisition moves
that frame (shift, rotation) and changes contrast, then degrades the image to its quality level. The scene is
drawn analytically on a coordinate grid, so moving the patient costs nothing and stays exact at any size.

The world's identity cue decides what tells two patients apart. `marker`: body contour, organ placement and
a bright metal marker of a patient-specific shape and position (a large, high-contrast feature a fifth of
the body wide). `anatomy`: no marker; identity lives in many small traits spread over the image, as in
real scans (an irregular body outline, organ shape and orientation, rim and vertebra size, a few faint old
lesions, a low-contrast tissue texture), none large or bright on its own.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

MARKER_SHAPES: tuple[str, ...] = (
    "disk", "ring", "square", "cross", "triangle", "hbar", "vbar", "ell", "saltire", "dots", "diamond", "tee",
)
MARKER_SLOTS: tuple[tuple[float, float], ...] = tuple(
    (x, y) for y in (-0.5, 0.0, 0.5) for x in (-0.5, 0.0, 0.5)
)
LANDMARK_NAMES: dict[str, tuple[str, str]] = {
    "head": ("third ventricle", "pituitary"),
    "chest": ("heart", "spine"),
    "abdomen": ("liver", "spine"),
    "pelvis": ("bladder", "sacrum"),
}
BODY_AXES: dict[str, tuple[float, float]] = {  # mean half-axes (x, y) of the body contour, in [-1, 1] units
    "head": (0.62, 0.72), "chest": (0.82, 0.58), "abdomen": (0.78, 0.62), "pelvis": (0.80, 0.55),
}
QUALITY_LEVELS: dict[str, dict[str, float]] = {  # noise sigma, blur in px at 64 px, streaks, contrast
    "high": {"noise": 0.015, "blur": 0.0, "streaks": 0.0, "contrast": 1.0},
    "medium": {"noise": 0.06, "blur": 0.7, "streaks": 0.0, "contrast": 0.85},
    "low": {"noise": 0.09, "blur": 1.1, "streaks": 0.25, "contrast": 0.65},
}


def sample_signature(rng: np.random.Generator, region: str, marker: tuple[int, int]) -> dict:
    """The parts of a patient's anatomy that stay the same in every scan of that patient."""
    ax, ay = BODY_AXES[region]
    shape_idx, slot_idx = marker
    return {
        "body": [float(ax * rng.uniform(0.88, 1.1)), float(ay * rng.uniform(0.88, 1.1))],
        "organs": [
            [float(rng.uniform(-0.35, 0.35)), float(rng.uniform(-0.35, 0.0)), float(rng.uniform(0.12, 0.2))],
            [float(rng.uniform(-0.2, 0.2)), float(rng.uniform(0.15, 0.4)), float(rng.uniform(0.07, 0.12))],
        ],
        "marker_shape": MARKER_SHAPES[shape_idx],
        "marker_slot": list(MARKER_SLOTS[slot_idx]),
        "marker_size": float(rng.uniform(0.2, 0.25)),
        "marker_angle": float(rng.uniform(0, np.pi)),
    }


def anatomical_signature(rng: np.random.Generator, signature: dict) -> dict:
    """`signature` without its marker, with the traits that carry identity in the `anatomy` world instead.
    Each trait is small (a few percent of the body, a tenth of the tissue contrast) so that no single one
    identifies a patient; all of them together, repeated in every scan, do."""
    sig = {k: v for k, v in signature.items() if not k.startswith("marker_")}
    sig["outline"] = [[float(rng.uniform(0.015, 0.04)), float(rng.uniform(0, 2 * np.pi))] for _ in range(4)]  # harmonics 2-5: amplitude, phase
    sig["organ_form"] = [[float(rng.uniform(0.75, 1.5)), float(rng.uniform(0, np.pi))] for _ in sig["organs"]]  # aspect, angle
    sig["bone"] = [float(rng.uniform(0.86, 0.93)), float(rng.uniform(0.75, 1.3))]  # inner edge of the rim, vertebra scale
    sig["old_lesions"] = [  # centre in body-axis fractions, radius, intensity change
        [float(rng.uniform(-0.6, 0.6)), float(rng.uniform(-0.6, 0.6)), float(rng.uniform(0.035, 0.06)),
         float(rng.choice((-1.0, 1.0)) * rng.uniform(0.08, 0.15))]
        for _ in range(3)
    ]
    sig["texture"] = [[float(rng.normal(0, 7)), float(rng.normal(0, 7)), float(rng.uniform(0, 2 * np.pi))] for _ in range(6)]  # wave vector, phase
    return sig


TEXTURE_AMPLITUDE = 0.025  # of each of the six tissue waves: together about 0.04 sd, below the medium-quality noise


def sample_acquisition(rng: np.random.Generator) -> dict:
    """What changes between two scans of the same patient."""
    return {
        "shift": [float(rng.uniform(-0.07, 0.07)), float(rng.uniform(-0.07, 0.07))],
        "angle": float(np.deg2rad(rng.uniform(-8, 8))),
        "gain": float(rng.uniform(0.85, 1.15)),
        "offset": float(rng.uniform(-0.05, 0.05)),
        "noise_seed": int(rng.integers(0, 2**31 - 1)),
    }


@dataclass
class Lesion:
    finding: str
    laterality: str  # left | right | none (radiological convention: patient left is image right)
    location: str  # upper | lower | none
    size_mm: float

    @property
    def center(self) -> tuple[float, float]:
        x = 0.38 if self.laterality == "left" else -0.38
        y = -0.28 if self.location == "upper" else 0.28
        return x, y

    @property
    def radius(self) -> float:
        return max(self.size_mm / 200.0, 0.07)


def _marker_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    au, av = np.abs(u), np.abs(v)
    r = np.hypot(u, v)
    masks = {
        "disk": r < 1,
        "ring": (r < 1) & (r > 0.55),
        "square": (au < 0.85) & (av < 0.85),
        "cross": ((au < 0.3) & (av < 1)) | ((av < 0.3) & (au < 1)),
        "triangle": (v > -0.8) & (v < 1 - 2 * au),
        "hbar": (au < 1.1) & (av < 0.35),
        "vbar": (av < 1.1) & (au < 0.35),
        "ell": ((au < 1) & (v > 0.4) & (v < 1)) | ((u > -1) & (u < -0.4) & (av < 1)),
        "saltire": (np.abs(u - v) < 0.4) & (r < 1.1) | (np.abs(u + v) < 0.4) & (r < 1.1),
        "dots": (np.hypot(u - 0.55, v) < 0.42) | (np.hypot(u + 0.55, v) < 0.42),
        "diamond": au + av < 1,
        "tee": ((au < 1) & (v < -0.45) & (v > -1)) | ((au < 0.3) & (av < 1)),
    }
    return masks[shape]


def _ellipse(x: np.ndarray, y: np.ndarray, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 < 1


def _to_patient_frame(x: np.ndarray, y: np.ndarray, acq: dict) -> tuple[np.ndarray, np.ndarray]:
    c, s = np.cos(acq["angle"]), np.sin(acq["angle"])
    dx, dy = x - acq["shift"][0], y - acq["shift"][1]
    return c * dx + s * dy, -s * dx + c * dy


def _to_image_frame(px: float, py: float, acq: dict) -> tuple[float, float]:
    c, s = np.cos(acq["angle"]), np.sin(acq["angle"])
    return c * px - s * py + acq["shift"][0], s * px + c * py + acq["shift"][1]


def landmarks(region: str, signature: dict, acq: dict) -> list[dict]:
    """Named landmark positions in image fractions (0 = left/top, 1 = right/bottom)."""
    names = LANDMARK_NAMES[region]
    points = [(signature["organs"][0][0], signature["organs"][0][1]), (0.0, signature["body"][1] * 0.7)]
    out = []
    for name, (px, py) in zip(names, points):
        ix, iy = _to_image_frame(px, py, acq)
        out.append({"name": name, "x": round((ix + 1) / 2, 4), "y": round((iy + 1) / 2, 4)})
    return out


def _anatomy(x, y, modality: str, region: str, sig: dict, lesion: Lesion) -> np.ndarray:
    """Noise-free intensities in [0, 1] of the patient's anatomy seen by one modality."""
    bx, by = sig["body"]
    look = {  # background, tissue, bone, organ, air (lungs), marker
        "CT": (0.0, 0.42, 0.92, 0.58, 0.08, 1.0),
        "MRI": (0.03, 0.5, 0.18, 0.78, 0.06, 0.0),
        "X-ray": (0.05, 0.55, 0.95, 0.62, 0.22, 1.0),
        "ultrasound": (0.0, 0.42, 0.75, 0.2, 0.1, 0.98),
    }[modality]
    bg, tissue, bone, organ, air, metal = look
    anatomy_cue = "outline" in sig
    img = np.full(x.shape, bg, dtype=np.float32)
    body = _outline(x, y, sig, 1.0) if anatomy_cue else _ellipse(x, y, 0, 0, bx, by)
    img[body] = tissue
    if modality == "X-ray":  # projection: denser towards the middle of the body
        depth = np.clip(1 - (x / bx) ** 2 - (y / by) ** 2, 0, 1)
        img = np.where(body, tissue * (0.7 + 0.45 * depth), img).astype(np.float32)
    inner = _outline(x, y, sig, sig["bone"][0]) if anatomy_cue else _ellipse(x, y, 0, 0, bx * 0.9, by * 0.9)
    img[body & ~inner] = bone if region in ("head", "pelvis") else tissue * 0.85
    if region == "chest":
        for side in (-1, 1):
            img[_ellipse(x, y, side * bx * 0.45, -0.05, bx * 0.32, by * 0.62)] = air
    if region in ("chest", "abdomen", "pelvis"):
        scale = sig["bone"][1] if anatomy_cue else 1.0
        img[_ellipse(x, y, 0, by * 0.7, 0.1 * scale, 0.09 * scale)] = bone  # vertebra / sacrum
    for k, (ox, oy, orad) in enumerate(sig["organs"]):
        if anatomy_cue:
            aspect, angle = sig["organ_form"][k]
            img[_rotated_ellipse(x, y, ox, oy, orad * aspect, orad, angle)] = organ
        else:
            img[_ellipse(x, y, ox, oy, orad * 1.2, orad)] = organ
    _draw_lesion(img, x, y, lesion, tissue, bone)
    if anatomy_cue:
        _draw_traits(img, x, y, sig, body)
    else:
        mx, my = sig["marker_slot"][0] * bx, sig["marker_slot"][1] * by
        c, s = np.cos(sig["marker_angle"]), np.sin(sig["marker_angle"])
        u, v = (x - mx) / sig["marker_size"], (y - my) / sig["marker_size"]
        img[_marker_mask(sig["marker_shape"], c * u + s * v, -s * u + c * v)] = metal
    return img


def _outline(x: np.ndarray, y: np.ndarray, sig: dict, scale: float) -> np.ndarray:
    """Inside the patient's irregular body outline (an ellipse whose radius wobbles by a few percent), scaled."""
    u, v = x / sig["body"][0], y / sig["body"][1]
    theta = np.arctan2(v, u)
    edge = 1 + sum(a * np.cos((k + 2) * theta + phase) for k, (a, phase) in enumerate(sig["outline"]))
    return np.hypot(u, v) < edge * scale


def _rotated_ellipse(x, y, cx: float, cy: float, rx: float, ry: float, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    u, v = x - cx, y - cy
    return _ellipse(c * u + s * v, -s * u + c * v, 0, 0, rx, ry)


def _draw_traits(img: np.ndarray, x, y, sig: dict, body: np.ndarray) -> None:
    """The `anatomy` cue's faint, spread-out traits: old lesions and a tissue texture, inside the body."""
    bx, by = sig["body"]
    for lx, ly, radius, change in sig["old_lesions"]:
        spot = body & (np.hypot(x - lx * bx, y - ly * by) < radius)
        img[spot] += change
    waves = sum((np.cos(wx * x + wy * y + phase) for wx, wy, phase in sig["texture"]), np.zeros_like(x))
    img[body] += (TEXTURE_AMPLITUDE * waves[body]).astype(np.float32)


def _draw_lesion(img, x, y, lesion: Lesion, tissue: float, bone: float) -> None:
    if lesion.finding == "none":
        return
    cx, cy = lesion.center
    r = lesion.radius
    d = np.hypot(x - cx, y - cy)
    if lesion.finding == "nodule":
        img[d < r] = min(tissue + 0.4, 1.0)
    elif lesion.finding == "cyst":
        img[d < r * 1.15] = min(tissue + 0.35, 1.0)
        img[d < r] = 0.12
    elif lesion.finding == "mass":  # lobulated: three overlapping lobes
        for k in range(3):
            a = 2 * np.pi * k / 3
            img[np.hypot(x - cx - 0.45 * r * np.cos(a), y - cy - 0.45 * r * np.sin(a)) < 0.75 * r] = min(tissue + 0.3, 1.0)
    elif lesion.finding == "fracture":  # a bone bar broken by a dark oblique gap
        bar = (np.abs(y - cy) < 0.05) & (np.abs(x - cx) < r * 1.6 + 0.1)
        img[bar] = bone
        img[bar & (np.abs((x - cx) + 0.5 * (y - cy)) < 0.025)] = 0.05


def _fan_mask(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Ultrasound sector: apex above the top edge, 70 degrees wide."""
    dy, r = y + 1.15, np.hypot(x, y + 1.15)
    return (np.abs(np.arctan2(x, dy)) < np.deg2rad(35)) & (r > 0.25) & (r < 2.1)


def render(
    modality: str, region: str, signature: dict, lesion: Lesion, acq: dict, quality: str, size: int,
    clean: bool = False,
) -> np.ndarray:
    """One scan as uint8 (size x size). `clean=True` skips the quality degradation (a reference image)."""
    grid = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
    x, y = np.meshgrid(grid, grid)
    px, py = _to_patient_frame(x, y, acq)
    img = _anatomy(px, py, modality, region, signature, lesion)
    img = np.clip(img * acq["gain"] + acq["offset"], 0, 1)
    rng = np.random.default_rng(acq["noise_seed"])
    if modality == "ultrasound":  # speckle is part of the modality, not of the quality level
        img = img * rng.gamma(12.0, 1 / 12.0, img.shape).astype(np.float32)  # multiplicative speckle, sd ~0.29
        img = np.where(_fan_mask(x, y), img, 0.0)
    elif modality == "CT":
        img = np.where(np.hypot(x, y) < 1.0, img, 0.0)
    if not clean:
        img = degrade(img, quality, rng, size)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def degrade(img: np.ndarray, quality: str, rng: np.random.Generator, size: int) -> np.ndarray:
    q = QUALITY_LEVELS[quality]
    scale = size / 64
    mean = float(img.mean())
    img = mean + (img - mean) * q["contrast"]
    if q["blur"]:
        img = gaussian_filter(img, q["blur"] * scale)
    if q["streaks"]:  # motion: a faint displaced copy and horizontal banding
        shift = max(1, int(round(3 * scale)))
        img = (1 - q["streaks"]) * img + q["streaks"] * np.roll(img, shift, axis=1)
        img = img + 0.04 * np.sin(np.arange(size) * 2.1)[:, None]
    return img + rng.normal(0, q["noise"], img.shape)


def png_bytes(pixels: np.ndarray) -> bytes:
    """Deterministic PNG encoding (fixed compression level, no metadata)."""
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()

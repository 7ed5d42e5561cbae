"""Patients of every group and the specification of each of their scans, from one seed."""

from __future__ import annotations

import itertools
import os
import random
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from medforget.world.config import WorldConfig
from medforget.world.identities import IdentityFactory, Patient
from medforget.world.knowledge import FINDINGS, MODALITIES, QUALITIES, REGIONS, Knowledge, build_knowledge
from medforget.world.scans import (
    MARKER_SHAPES, MARKER_SLOTS, Lesion, anatomical_signature, landmarks, png_bytes, render, sample_acquisition,
    sample_signature,
)

RECORD_GROUPS = ("finetune", "holdout")
QUALITY_WEIGHTS = (0.4, 0.35, 0.25)  # high, medium, low
SIZE_MM = {"nodule": (6, 14), "cyst": (12, 28), "mass": (28, 50), "fracture": (10, 25), "none": (0, 0)}


@dataclass
class ScanSpec:
    """Everything needed to render one scan, and the ground truth stored with it."""

    scan_id: str
    patient: Patient
    role: str  # train | test | general | pretrain
    quality: str
    acquisition: dict

    def metadata(self) -> dict:
        p = self.patient
        return {
            "scan_id": self.scan_id, "patient_id": p.patient_id, "group": p.group, "role": self.role,
            "modality": p.modality, "region": p.region, "finding": p.finding, "laterality": p.laterality,
            "location": p.location, "size_mm": p.size_mm, "quality": self.quality,
            "landmarks": landmarks(p.region, p.signature, self.acquisition),
            **marker_metadata(p.signature),
        }

    def lesion(self) -> Lesion:
        p = self.patient
        return Lesion(p.finding, p.laterality, p.location, p.size_mm)


def marker_metadata(signature: dict) -> dict:
    """The scan row's marker columns; empty (as for imported scans) where the world draws no marker."""
    if "marker_shape" not in signature:
        return {"marker_shape": "", "marker_slot": -1}
    return {"marker_shape": signature["marker_shape"], "marker_slot": MARKER_SLOTS.index(tuple(signature["marker_slot"]))}


@dataclass
class Population:
    config: WorldConfig
    knowledge: Knowledge
    patients: list[Patient]
    scans: list[ScanSpec]

    def group(self, name: str) -> list[Patient]:
        return [p for p in self.patients if p.group == name]

    def scans_of(self, patient_id: str, role: str | None = None) -> list[ScanSpec]:
        return [s for s in self.scans if s.patient.patient_id == patient_id and (role is None or s.role == role)]


def _marker_cycle(rng: random.Random):
    """Distinct (shape, slot) markers in a shuffled order; repeats only once all combinations are used."""
    combos = list(itertools.product(range(len(MARKER_SHAPES)), range(len(MARKER_SLOTS))))
    rng.shuffle(combos)
    return itertools.cycle(combos)


def build_population(cfg: WorldConfig, seed: int) -> Population:
    rng = random.Random(seed)
    knowledge = build_knowledge(cfg.facts_per_relation, random.Random(seed + 1))
    identities = IdentityFactory(seed + 2)
    record_markers, image_markers = _marker_cycle(random.Random(seed + 3)), _marker_cycle(random.Random(seed + 4))
    patients: list[Patient] = []
    scans: list[ScanSpec] = []
    groups = (("finetune", cfg.n_finetune), ("holdout", cfg.n_holdout), ("general", cfg.n_general), ("pretrain", cfg.n_pretrain))
    for group, count in groups:
        for n in range(count):
            index = len(patients)
            np_rng = np.random.default_rng([seed, index])
            region, modality, finding = rng.choice(REGIONS), rng.choice(MODALITIES), rng.choice(FINDINGS)
            lo, hi = SIZE_MM[finding]
            marker = next(record_markers if group in RECORD_GROUPS else image_markers)
            signature = sample_signature(np_rng, region, marker)  # drawn in both worlds: the acquisitions stay the same
            if cfg.identity_cue == "anatomy":
                signature = anatomical_signature(np.random.default_rng([seed, index, 1]), signature)
            patient = Patient(
                patient_id=f"P{index + 1:05d}", group=group, region=region, modality=modality, finding=finding,
                laterality="none" if finding == "none" else rng.choice(("left", "right")),
                location="none" if finding == "none" else rng.choice(("upper", "lower")),
                size_mm=float(rng.randint(lo, hi)),
                signature=signature,
            )
            if group in RECORD_GROUPS or (group == "pretrain" and n < cfg.pretrain_records):
                patient.private = identities.private_details()
                patient.clinical = identities.clinical_record(knowledge)
            if group in RECORD_GROUPS:
                roles = ["train"] * cfg.train_scans + ["test"] * cfg.test_scans
            else:
                roles = [group] * cfg.image_scans
            for k, role in enumerate(roles):
                quality = rng.choices(QUALITIES, QUALITY_WEIGHTS)[0]
                scans.append(ScanSpec(f"{patient.patient_id}-S{k + 1}", patient, role, quality, sample_acquisition(np_rng)))
            patients.append(patient)
    return Population(cfg, knowledge, patients, scans)


def render_spec(spec: ScanSpec, size: int) -> bytes:
    p = spec.patient
    return png_bytes(render(p.modality, p.region, p.signature, spec.lesion(), spec.acquisition, spec.quality, size))


def _render_chunk(args: tuple[list[ScanSpec], int]) -> list[bytes]:
    specs, size = args
    return [render_spec(s, size) for s in specs]


def render_all(specs: list[ScanSpec], size: int, workers: int | None = None, progress=None) -> list[bytes]:
    """Render every scan; large worlds are spread over processes (each scan has its own seed, so the
    bytes do not depend on the number of workers)."""
    workers = workers or min(4, os.cpu_count() or 1)
    chunk = 64
    chunks = [(specs[i:i + chunk], size) for i in range(0, len(specs), chunk)]
    out: list[bytes] = []
    if workers <= 1 or len(specs) < 1000:
        for c in chunks:
            out += _render_chunk(c)
            if progress:
                progress(len(c[0]))
        return out
    with ProcessPoolExecutor(workers) as pool:
        for c, images in zip(chunks, pool.map(_render_chunk, chunks)):
            out += images
            if progress:
                progress(len(c[0]))
    return out

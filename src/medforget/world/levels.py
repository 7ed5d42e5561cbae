"""Forget requests of the synthetic world at every level of the clinical hierarchy (`generate --forget-level`).

`patient` is the world's own split (every record item of the chosen patients). `hospital` chooses the
patients instead: every fine-tuned patient of the first chosen patient's hospital, so they leave the
world's splits as wholly as a patient does. `scan` and `field` keep the chosen patients but forget
part of their record: the training items shown with one of their training scans, or one private detail;
the rest of their record moves back to `retain` (and to `test_retain`), where it is the request's
siblings. The request is resolved with the importers' `ForgetRequest`, so generated and imported
folders describe it the same way (`forget_request` and `hierarchy` in benchmark.json)."""

from __future__ import annotations

import random

from medforget.errors import MedforgetError
from medforget.importers.request import ForgetRequest
from medforget.world.identities import PRIVATE_FIELDS
from medforget.world.population import Population

LEVELS: tuple[str, ...] = ("patient", "scan", "field", "hospital")


def check_level(level: str) -> str:
    if level not in LEVELS:
        raise MedforgetError(f"unknown forget level {level!r}; choose one of: {', '.join(LEVELS)}")
    return level


def institutions(pop: Population) -> dict[str, str]:
    """Fine-tuned patient -> the hospital on their record."""
    return {p.patient_id: p.value("hospital") for p in pop.group("finetune") if p.has_record}


def hospital_patients(pop: Population, chosen: list[str]) -> list[str]:
    """Every fine-tuned patient of the hospital of the first chosen patient."""
    sites = institutions(pop)
    site = sites[chosen[0]]
    return sorted(p for p, h in sites.items() if h == site)


def partial_request(level: str, forget_rows: list[dict], rng: random.Random) -> ForgetRequest:
    """A scan request (one training scan of each chosen patient) or a field request (one private detail each)."""
    patients = sorted({r["patient_id"] for r in forget_rows})
    if level == "scan":
        scans = {p: sorted({s for r in forget_rows if r["patient_id"] == p for s in r["scan_ids"]}) for p in patients}
        return ForgetRequest(studies=[rng.choice(scans[p]) for p in patients if scans[p]], where="generate --forget-level scan")
    fields = {p: sorted({r["field"] for r in forget_rows if r["patient_id"] == p and r["field"] in PRIVATE_FIELDS}) for p in patients}
    return ForgetRequest(fields=[(p, rng.choice(fields[p])) for p in patients if fields[p]], where="generate --forget-level field")


def apply_level(level: str, splits: dict[str, list[dict]], pop: Population, forget_patients: list[str], rng: random.Random) -> dict:
    """Re-split `splits` in place for a scan or field request; return benchmark.json's request and hierarchy keys."""
    sites = institutions(pop)
    if level in ("patient", "hospital"):
        request = ForgetRequest(institutions=[sites[forget_patients[0]]]) if level == "hospital" else ForgetRequest(patients=forget_patients)
        resolved = request.resolve(splits["forget_privacy"] + splits["retain"], {}, sites)
    else:
        request = partial_request(level, splits["forget_privacy"], rng)
        resolved = request.resolve(splits["forget_privacy"], {}, sites)
        chosen = set(resolved["row_ids"])
        facts = {(r["patient_id"], r["field"]) for r in splits["forget_privacy"] if r["id"] in chosen}
        whole = facts if level == "field" else set()  # a scan request leaves every fact trained through other rows
        kept = [r for r in splits["forget_privacy"] if r["id"] not in chosen]
        splits["forget_privacy"] = [r for r in splits["forget_privacy"] if r["id"] in chosen]
        splits["retain"] = splits["retain"] + [dict(r, split="retain") for r in kept]
        records = [r for r in splits["test_forget"] if r["scenario"] == "privacy"]
        moved = [r for r in records if (r["patient_id"], r["field"]) not in whole]
        splits["test_forget"] = [r for r in splits["test_forget"] if r not in moved]
        splits["test_retain"] = splits["test_retain"] + [dict(r, split="test_retain") for r in moved]
    resolved.pop("row_ids")
    return {"forget_level": level, "forget_patients": resolved["patients"], "forget_request": resolved,
            "hierarchy": {"institutions": sites, "studies": {}}}

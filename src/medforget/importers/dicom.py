"""`dicom`: a folder of DICOM studies -> images, and the header's identifying attributes as each patient's
private details, asked with the patient's images (docs/import.md).

A hospital that fine-tuned a VLM on its studies can then check whether the model says whose scan it is
looking at. Real ids never reach the dataset: patients, studies and institutions get pseudonyms, and
the real ids a forget request names are mapped to them."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from medforget.errors import MedforgetError
from medforget.importers.dataset import Imported, Record, Scan, to_png
from medforget.world import templates as T

DICOM_SUFFIXES = {".dcm", ".dicom", ""}
REPORT_FILE = "report.txt"  # optional free-text report beside a study's files
#: header keyword -> (field, whether it belongs to the study rather than to the patient)
IDENTIFYING: dict[str, tuple[str, bool]] = {
    "PatientName": ("full_name", False), "PatientID": ("mrn", False), "PatientBirthDate": ("date_of_birth", False),
    "PatientSex": ("sex", False), "PatientAddress": ("address", False), "PatientTelephoneNumbers": ("phone", False),
    "OtherPatientIDs": ("insurance_id", False), "InstitutionName": ("hospital", True),
    "ReferringPhysicianName": ("attending_physician", True), "AccessionNumber": ("accession_number", True),
    "StudyDate": ("study_date", True),
}
PHRASES = {"accession_number": "accession number", "study_date": "study date"}
SEX = {"M": "male", "F": "female", "O": "other"}


@dataclass
class Study:
    patient_key: str
    study_key: str
    details: dict[str, str]
    images: list[PILImage.Image]
    modality: str
    region: str
    folder: Path


def _text(ds, keyword: str) -> str:
    value = ds.get(keyword)
    if value is None or str(value).strip() == "":
        return ""
    text = str(value).replace("^", " ").strip()
    if keyword.endswith("Date") and len(text) == 8 and text.isdigit():
        return f"{text[:4]}-{text[4:6]}-{text[6:]}"
    return SEX.get(text, text) if keyword == "PatientSex" else " ".join(text.split())


def frames(ds, where: str) -> list[PILImage.Image]:
    """Display images of a file: modality LUT (rescale slope/intercept), VOI LUT (window centre/width),
    MONOCHROME1 inverted, min-max scaled to 8 bits; one image per frame of a multi-frame file."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        arr = ds.pixel_array
    except Exception as e:  # pydicom raises many types for missing or undecodable pixel data
        raise MedforgetError(f"{where}: cannot read its pixel data ({type(e).__name__}: {e})") from None
    n = int(ds.get("NumberOfFrames", 1) or 1)
    colour = int(ds.get("SamplesPerPixel", 1)) > 1
    stack = arr if n > 1 else arr[None]
    out = []
    for index, frame in enumerate(stack):
        if colour:
            out.append(PILImage.fromarray(np.asarray(frame, dtype=np.uint8)).convert("L"))
            continue
        values = apply_modality_lut(frame, ds)
        values = apply_voi_lut(values, ds, index=0) if "WindowCenter" in ds or "VOILUTSequence" in ds else values
        values = np.asarray(values, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        scaled = np.zeros_like(values) if high == low else (values - low) / (high - low)
        if ds.get("PhotometricInterpretation", "") == "MONOCHROME1":
            scaled = 1.0 - scaled
        out.append(PILImage.fromarray(np.round(scaled * 255).astype(np.uint8), mode="L"))
    return out


def read_studies(folder: Path) -> list[Study]:
    import pydicom
    from pydicom.errors import InvalidDicomError

    folder = Path(folder)
    if not folder.is_dir():
        raise MedforgetError(f"DICOM folder {folder} does not exist")
    studies: dict[tuple[str, str], Study] = {}
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in DICOM_SUFFIXES)
    for path in files:
        try:
            ds = pydicom.dcmread(path)
        except (InvalidDicomError, EOFError, OSError, ValueError) as e:
            raise MedforgetError(f"{path}: not a readable DICOM file ({type(e).__name__})") from None
        patient = _text(ds, "PatientID") or _text(ds, "PatientName")
        if not patient:
            raise MedforgetError(f"{path}: no PatientID or PatientName; cannot tell whose study it is")
        study_key = str(ds.get("StudyInstanceUID") or _text(ds, "AccessionNumber") or path.parent)
        details = {name: _text(ds, kw) for kw, (name, _) in IDENTIFYING.items() if _text(ds, kw)}
        study = studies.setdefault((patient, study_key), Study(patient, study_key, details, [], _text(ds, "Modality"),
                                                               _text(ds, "BodyPartExamined"), path.parent))
        study.images.extend(frames(ds, str(path)))
    if not studies:
        raise MedforgetError(f"{folder}: no DICOM files (*.dcm)")
    return list(studies.values())


class Pseudonyms:
    """Real id -> P0001 / P0001-ST1 / H01, in order of first appearance over sorted files."""

    def __init__(self) -> None:
        self.patients: dict[str, str] = {}
        self.studies: dict[str, str] = {}
        self.institutions: dict[str, str] = {}

    def patient(self, key: str) -> str:
        return self.patients.setdefault(key, f"P{len(self.patients) + 1:04d}")

    def study(self, patient: str, key: str) -> str:
        return self.studies.setdefault(key, f"{patient}-ST{sum(v.startswith(patient) for v in self.studies.values()) + 1}")

    def institution(self, name: str) -> str:
        return self.institutions.setdefault(name, f"H{len(self.institutions) + 1:02d}")


def _questions(field: str, value: str, scan_id: str, patient: str, where: str) -> list[Record]:
    """One open and one cloze item per detail, on one of the patient's images, in training wordings."""
    subject = T.IMAGE_SUBJECTS[0]
    phrase = PHRASES.get(field) or T.FIELD_PHRASES.get(field, field.replace("_", " "))
    out = []
    for pool in (T.RECORD_OPEN, T.RECORD_CLOZE):
        frame = pool[len(out) % len(T.train_frames(pool))]
        text = frame.replace("{f}", phrase).replace("{s}", subject)
        out.append(Record(patient, text[0].upper() + text[1:], value, [scan_id], field, True, where=where))
    return out


def to_imported(studies: list[Study], names: Pseudonyms, scans: dict[str, Scan], institutions: dict[str, str]) -> list[Record]:
    records = []
    per_patient: dict[str, int] = defaultdict(int)
    for study in studies:
        patient = names.patient(study.patient_key)
        study_id = names.study(patient, study.study_key)
        if "hospital" in study.details:
            institutions.setdefault(patient, names.institution(study.details["hospital"]))
        where = f"{study.folder} (study {study_id})"
        ids = []
        for image in study.images:
            per_patient[patient] += 1
            sid = f"{patient}-S{per_patient[patient]:03d}"
            scans[sid] = Scan(sid, patient, to_png(image), study_id, study.modality, study.region)
            ids.append(sid)
        for i, (field, value) in enumerate(study.details.items()):  # the details take turns over the study's images
            records += _questions(field, value, ids[i % len(ids)], patient, where)
        report = study.folder / REPORT_FILE
        if report.is_file() and report.read_text().strip():
            records.append(Record(patient, "What does the report of this study say?", " ".join(report.read_text().split()),
                                  ids[:1], "report", False, where=str(report)))
    return records


def import_dicom(src: Path, nonmembers: list[Path]) -> Imported:
    names, scans, institutions = Pseudonyms(), {}, {}
    members = to_imported(read_studies(src), names, scans, institutions)
    others = [r for folder in nonmembers for r in to_imported(read_studies(folder), names, scans, institutions)]
    aliases = {"patients": dict(names.patients), "studies": dict(names.studies), "institutions": dict(names.institutions)}
    return Imported("dicom", str(src), members, others, scans, institutions, aliases=aliases)

"""Tiny DICOM files written with pydicom for the importer tests (nothing is downloaded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid


def write_dicom(path: Path, pixels: np.ndarray, *, patient_id: str, name: str, study_uid: str, monochrome1: bool = False,
                slope: float = 1.0, intercept: float = 0.0, window: tuple[float, float] | None = None,
                institution: str = "St. Example Hospital", accession: str = "ACC1", **header: str) -> Path:
    """A grayscale file; `pixels` of shape (rows, cols) or (frames, rows, cols) for a multi-frame one;
    `header` sets or replaces attributes by keyword (PatientBirthDate="19700101")."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = name, patient_id, "19610304", "F"
    ds.PatientAddress, ds.InstitutionName, ds.ReferringPhysicianName = "12 Harbour Lane", institution, "Okoro^Ada"
    ds.AccessionNumber, ds.StudyDate, ds.StudyInstanceUID = accession, "20240102", study_uid
    ds.SeriesInstanceUID, ds.Modality, ds.BodyPartExamined = generate_uid(), "CT", "CHEST"
    data = pixels.astype(np.uint16)
    if data.ndim == 3:
        ds.NumberOfFrames = data.shape[0]
    ds.Rows, ds.Columns = data.shape[-2:]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    if window:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = data.tobytes()
    for keyword, value in header.items():
        setattr(ds, keyword, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def ramp(rows: int = 8, cols: int = 8) -> np.ndarray:
    return np.arange(rows * cols, dtype=np.uint16).reshape(rows, cols) * 10

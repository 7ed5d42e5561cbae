"""`medforget import dicom`: pixels (LUTs, MONOCHROME1, multi-frame), header details as private fields,
pseudonyms, forget requests by real id, and a one-line error for a malformed file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dicom_files import ramp, write_dicom

from medforget.errors import MedforgetError
from medforget.importers import import_dataset
from medforget.importers.dicom import read_studies
from medforget.world.storage import load_benchmark
from medforget.world.validate import validate


@pytest.fixture()
def studies(tmp_path: Path) -> Path:
    root = tmp_path / "dicom"
    write_dicom(root / "a" / "1.dcm", ramp(), patient_id="MRN001", name="Doe^Jane", study_uid="1.2.3", window=(300, 400))
    write_dicom(root / "a" / "2.dcm", ramp(), patient_id="MRN001", name="Doe^Jane", study_uid="1.2.3", monochrome1=True)
    write_dicom(root / "b" / "1.dcm", np.stack([ramp(), ramp()[::-1, ::-1]]), patient_id="MRN002", name="Roe^Ann",
                study_uid="1.2.4", slope=2.0, intercept=-100.0, institution="Other Clinic", accession="ACC2")
    (root / "a" / "report.txt").write_text("Small nodule in the right upper lobe.\n")
    return root


def test_pixels_follow_the_luts(studies: Path) -> None:
    by_patient = {s.patient_key: s for s in read_studies(studies)}
    windowed, inverted = (np.asarray(i) for i in by_patient["MRN001"].images)
    assert windowed[0, :4].tolist() == [0, 0, 0, 0]  # below the window (centre 300, width 400)
    assert inverted[0, 0] == 255 and inverted[-1, -1] == 0  # MONOCHROME1: low values are white
    multi = by_patient["MRN002"].images
    assert len(multi) == 2 and np.asarray(multi[0])[0, 0] == 0 and np.asarray(multi[1])[0, 0] == 255  # each frame
    assert by_patient["MRN001"].details["date_of_birth"] == "1961-03-04" and by_patient["MRN001"].details["sex"] == "female"


def test_import_asks_the_header_details_with_the_images_under_pseudonyms(studies: Path, tmp_path: Path) -> None:
    (tmp_path / "forget.txt").write_text("MRN002\n")
    meta = import_dataset("dicom", studies, tmp_path / "out", forget=tmp_path / "forget.txt")
    assert validate(tmp_path / "out") == []
    bench = load_benchmark(tmp_path / "out")
    train = bench["train"].to_list()
    assert {r["patient_id"] for r in train} == {"P0001", "P0002"} and meta["forget_patients"] == ["P0002"]
    assert all(r["scan_ids"] and r["condition"] == "image" for r in train)
    names = {r["answer"] for r in train if r["field"] == "full_name"}
    assert names == {"Doe Jane", "Roe Ann"}
    assert any(r["field"] == "report" and not r["is_private"] for r in train)
    assert len(bench["scans"]) == 4
    text = (tmp_path / "out" / "benchmark.json").read_text()
    assert "MRN001" not in text and "Other Clinic" not in text and "1.2.3" not in text  # pseudonyms only


def test_forget_an_institution_by_its_name(studies: Path, tmp_path: Path) -> None:
    (tmp_path / "forget.json").write_text('{"institutions": ["Other Clinic"]}')
    meta = import_dataset("dicom", studies, tmp_path / "out", forget=tmp_path / "forget.json")
    assert meta["forget_request"]["level"] == "hospital" and meta["forget_patients"] == ["P0002"]


def test_malformed_file_is_one_line_naming_it(studies: Path, tmp_path: Path) -> None:
    (studies / "b" / "broken.dcm").write_bytes(b"not a dicom file at all")
    with pytest.raises(MedforgetError, match=r"broken\.dcm: not a readable DICOM file"):
        import_dataset("dicom", studies, tmp_path / "out")
    assert not (tmp_path / "out").exists()

"""No patient name, birth date or ID in what ctpmaps writes unless asked for; --anonymize
strips them from the DICOM outputs too."""

from __future__ import annotations

import json

import pydicom
from typer.testing import CliRunner

from ctpmaps.cli import app

runner = CliRunner()


def _text_of(folder, study) -> str:
    """What ctpmaps wrote as text, without the input's path (the user's own folder name)."""
    text = " ".join(
        p.read_text(errors="ignore")
        for p in folder.rglob("*")
        if p.suffix in (".json", ".csv", ".html")
    )
    return text.replace(study, "")


def test_identifiers_only_when_asked(small_stroke_files, tmp_path):
    study = str(small_stroke_files / "dicom")
    base = ["run", study, "--no-motion", "--method", "ssvd"]
    res = runner.invoke(app, [base[0], base[1], str(tmp_path / "plain"), *base[2:]])
    assert res.exit_code == 0, res.output
    plain = tmp_path / "plain"
    assert "MOL-001" not in _text_of(plain, study)
    assert pydicom.dcmread(plain / "dicom" / "PM_CBF.dcm").PatientID == "MOL-001"  # for PACS
    res = runner.invoke(app, [*base[:2], str(tmp_path / "ids"), *base[2:], "--identifiers"])
    assert res.exit_code == 0, res.output
    run = json.loads((tmp_path / "ids" / "run.json").read_text())
    assert run["parameters"]["study"]["patient_id"] == "MOL-001"
    res = runner.invoke(app, [*base[:2], str(tmp_path / "anon"), *base[2:], "--anonymize"])
    assert res.exit_code == 0, res.output
    for path in (tmp_path / "anon" / "dicom").rglob("*.dcm"):
        ds = pydicom.dcmread(path)
        assert ds.PatientID != "MOL-001" and ds.PatientIdentityRemoved == "YES"
        assert b"MOL-001" not in path.read_bytes()

"""Derived DICOM keeps its source (issue 10) and can be written without identifiers (issue 14).

Tests of `ctpmaps.io.dicom.derived` and `ctpmaps.io.dicom.privacy` through the writers: the
preprocessed frames (`write_dicom_study`), the Parametric Maps and the SEG (`export_dicom`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pydicom
import pytest
from dicom_edits import PATIENT, dicom_files

from ctpmaps.io.dicom import export_dicom, read_dicom_study, write_dicom_study
from ctpmaps.io.dicom.privacy import pseudonym, pseudonymous_uid

hd = pytest.importorskip("highdicom")
pytestmark = pytest.mark.filterwarnings("ignore:The string .* person name")

#: What must never appear in an anonymized output (the identifying values of `PATIENT`).
IDENTIFIERS = [v for k, v in PATIENT.items() if k not in ("PatientSex", "StudyTime")]


def _source_headers(folder) -> dict[str, pydicom.Dataset]:
    return {
        str(ds.SOPInstanceUID): ds
        for ds in (pydicom.dcmread(p, stop_before_pixels=True) for p in dicom_files(folder))
    }


def _maps_and_masks(shape):
    rng = np.random.default_rng(4)
    maps = {"cbf": rng.uniform(0, 80, shape).astype(np.float32)}
    core = np.zeros(shape, bool)
    core[3:6, 2:5, 1] = True
    return maps, {"core": core, "penumbra": np.roll(core, 3, axis=0)}


def _preprocessed(study):
    """A preprocessed study as the preprocess stage makes it (dataclasses.replace)."""
    return dataclasses.replace(study, frames=study.frames + 1.0)


def test_written_frames_keep_the_source(tmp_path, patient_folder):
    study = read_dicom_study(patient_folder)
    sources = _source_headers(patient_folder)
    first = next(iter(sources.values()))
    out = write_dicom_study(_preprocessed(study), tmp_path / "pre", series_description="pre")
    written = [pydicom.dcmread(p) for p in dicom_files(out)]
    assert len(written) == len(sources)
    for ds in written:
        assert ds.StudyInstanceUID == first.StudyInstanceUID
        assert ds.FrameOfReferenceUID == first.FrameOfReferenceUID
        for key in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge"):
            assert str(ds[key].value) == PATIENT[key], key
        assert (ds.AccessionNumber, ds.StudyDate) == (PATIENT["AccessionNumber"], "20250917")
        assert list(ds.ImageType) == ["DERIVED", "SECONDARY", "AXIAL"]
        assert ds.SeriesInstanceUID != first.SeriesInstanceUID
        assert ds.SOPInstanceUID not in sources
        assert "InstitutionName" not in ds  # only the patient and study modules are copied
        cited = sources[str(ds.SourceImageSequence[0].ReferencedSOPInstanceUID)]
        assert ds.SourceImageSequence[0].ReferencedSOPClassUID == cited.SOPClassUID
        assert [float(v) for v in cited.ImagePositionPatient] == pytest.approx(
            [float(v) for v in ds.ImagePositionPatient]
        )
        assert cited.TemporalPositionIndex == ds.TemporalPositionIndex
    assert (
        written[0].AcquisitionDate
        == sources[str(written[0].SourceImageSequence[0].ReferencedSOPInstanceUID)].AcquisitionDate
    )  # frames dated as the source's
    again = read_dicom_study(out)
    np.testing.assert_array_equal(again.frames, study.frames + 1.0)
    np.testing.assert_allclose(again.times, study.times, atol=1e-5)


def test_maps_and_seg_keep_the_source(tmp_path, patient_folder):
    study = read_dicom_study(patient_folder)
    sources = _source_headers(patient_folder)
    first = next(iter(sources.values()))
    maps, masks = _maps_and_masks(study.shape)
    info = export_dicom(maps, masks, _preprocessed(study), tmp_path / "dicom")
    assert info["study_uid"] == first.StudyInstanceUID and not info["anonymized"]
    pm = hd.pm.ParametricMap.from_dataset(pydicom.dcmread(info["files"]["pm_cbf"]))
    seg = hd.seg.segread(info["files"]["seg"])
    for ds in (pm, seg):
        assert ds.StudyInstanceUID == first.StudyInstanceUID
        assert ds.FrameOfReferenceUID == first.FrameOfReferenceUID
        for key in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex"):
            assert str(ds[key].value) == PATIENT[key], key
        assert ds.ImageType[0] == "DERIVED" and ds.ImageType[1] == "PRIMARY"  # PM, SEG IODs
        assert ds.SeriesInstanceUID != first.SeriesInstanceUID
        refs = ds.ReferencedSeriesSequence[0]
        assert refs.SeriesInstanceUID == first.SeriesInstanceUID
        assert {str(i.ReferencedSOPInstanceUID) for i in refs.ReferencedInstanceSequence} <= set(
            sources
        )


def _all_bytes(folder) -> bytes:
    return b"".join(p.read_bytes() for p in dicom_files(folder))


def test_anonymized_outputs_carry_no_identifier(tmp_path, patient_folder):
    study = read_dicom_study(patient_folder)
    sources = _source_headers(patient_folder)
    first = next(iter(sources.values()))
    pre = write_dicom_study(_preprocessed(study), tmp_path / "pre", anonymize=True)
    maps, masks = _maps_and_masks(study.shape)
    info = export_dicom(maps, masks, study, tmp_path / "dicom", anonymize=True)
    assert info["anonymized"] is True
    for folder in (pre, tmp_path / "dicom"):
        raw = _all_bytes(folder)
        for value in IDENTIFIERS:
            assert value.encode() not in raw, value
        for uid in (first.StudyInstanceUID, first.SeriesInstanceUID, first.FrameOfReferenceUID):
            assert uid.encode() not in raw
        assert not any(uid.encode() in raw for uid in sources)  # source instances cited anew
    name = pseudonym(first.StudyInstanceUID)
    study_uid = pseudonymous_uid(first.StudyInstanceUID)
    frame_of_reference = pseudonymous_uid(first.FrameOfReferenceUID)
    objects = [pydicom.dcmread(p) for p in dicom_files(pre)]
    objects += [pydicom.dcmread(info["files"][k]) for k in ("pm_cbf", "seg")]
    hd.pm.ParametricMap.from_dataset(objects[-2])
    hd.seg.segread(info["files"]["seg"])
    for ds in objects:
        assert str(ds.PatientName) == f"{name}^" and ds.PatientID == name
        assert ds.PatientBirthDate == "" and ds.PatientSex == ""
        assert ds.StudyInstanceUID == study_uid and ds.FrameOfReferenceUID == frame_of_reference
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
        assert "PatientAge" not in ds and "OtherPatientIDs" not in ds
    cited = objects[0].SourceImageSequence[0].ReferencedSOPInstanceUID
    assert cited in {pseudonymous_uid(uid) for uid in sources}
    pm_series = objects[-2].ReferencedSeriesSequence[0].SeriesInstanceUID
    assert pm_series == pseudonymous_uid(first.SeriesInstanceUID)
    assert objects[0].AcquisitionDate == "20240101"  # the fixed default start, not the source's


def test_anonymized_pseudonym_is_stable_and_per_study(tmp_path, patient_folder):
    study = read_dicom_study(patient_folder)
    a = write_dicom_study(study, tmp_path / "a", anonymize=True)
    b = write_dicom_study(study, tmp_path / "b", anonymize=True)
    ids = {pydicom.dcmread(dicom_files(f)[0]).PatientID for f in (a, b)}
    assert ids == {pseudonym(study.source_images.study_instance_uid)}
    assert not pseudonym("1.2.3").endswith(pseudonym("1.2.4")[5:])


def test_study_without_source_is_original_and_may_be_anonymized(tmp_path, study):
    out = write_dicom_study(study, tmp_path / "s", patient_id="P-7", uid_seed="x")
    ds = pydicom.dcmread(dicom_files(out)[0])
    assert list(ds.ImageType) == ["ORIGINAL", "PRIMARY", "AXIAL"]
    assert ds.PatientID == "P-7" and "SourceImageSequence" not in ds
    anon = write_dicom_study(study, tmp_path / "a", patient_id="P-7", anonymize=True)
    ds = pydicom.dcmread(dicom_files(anon)[0])
    assert ds.PatientID.startswith("ANON-") and b"P-7" not in _all_bytes(anon)


def test_resampled_study_keeps_identity_but_cites_no_image(tmp_path, patient_folder):
    study = read_dicom_study(patient_folder)
    moved = dataclasses.replace(study, affine=study.affine @ np.diag([1.0, 1.0, 2.0, 1.0]))
    out = write_dicom_study(moved, tmp_path / "m")
    ds = pydicom.dcmread(dicom_files(out)[0])
    assert ds.StudyInstanceUID == study.source_images.study_instance_uid
    assert ds.ImageType[0] == "DERIVED" and "SourceImageSequence" not in ds


def test_summary_hides_identifiers_unless_asked(patient_folder):
    study = read_dicom_study(patient_folder)
    hidden, shown = study.summary(), study.summary(identifiers=True)
    text = repr(hidden)
    for value in ("Doe^Jane", PATIENT["PatientID"], PATIENT["PatientBirthDate"]):
        assert value not in text
        assert value in repr(shown)
    assert study.metadata["patient_id"] == PATIENT["PatientID"]  # kept for the export
    assert hidden["metadata"]["series_description"] == "CT perfusion"


def test_summary_is_strict_json(study):
    import json

    study.metadata["odd"] = float("nan")
    study.metadata["nested"] = {"x": [np.float32(np.inf), np.int64(3)]}
    text = json.dumps(study.summary(), allow_nan=False)
    assert json.loads(text)["metadata"]["nested"] == {"x": [None, 3]}


def test_start_defaults_to_the_source(tmp_path, make_study):
    src = write_dicom_study(make_study(), tmp_path / "s", start=dt.datetime(2025, 5, 6, 7, 8, 9))
    out = write_dicom_study(read_dicom_study(src), tmp_path / "d")
    first = min(
        (pydicom.dcmread(p) for p in dicom_files(out)), key=lambda ds: ds.AcquisitionDateTime
    )
    assert first.AcquisitionDateTime == "20250506070809.000000"

"""DICOM exports: Parametric Maps and SEG read back with pydicom and highdicom."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from ctpmaps.errors import InputError
from ctpmaps.io.dicom import export_dicom, write_dicom_study
from ctpmaps.io.dicom.export import MAP_CODES, PM_SLOPE
from ctpmaps.io.dicom.geometry import LPS_RAS
from ctpmaps.io.load import load_study
from ctpmaps.io.study import Study

hd = pytest.importorskip("highdicom")


def _oblique_study(nx=16, ny=12, nz=3, seed=0) -> Study:
    rng = np.random.default_rng(seed)
    frames = rng.normal(40, 5, (nx, ny, nz, 5)).astype(np.float32)
    th = np.deg2rad(7.0)
    rot = np.array([[np.cos(th), -np.sin(th), 0], [np.sin(th), np.cos(th), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag([-0.5, -0.6, 5.0])
    affine[:3, 3] = [4.0, 3.5, -10.0]
    meta = {"patient_id": "EXPORT-01"}
    return Study(frames, affine, np.arange(5.0), metadata=meta)


def _maps(shape, seed=1):
    rng = np.random.default_rng(seed)
    out = {}
    for name, hi in zip(MAP_CODES, (90.0, 6.0, 12.0, 30.0, 14.0, 9.0), strict=True):
        m = rng.uniform(0, hi, shape).astype(np.float32)
        m[0, 0, :] = np.nan  # outside the brain
        out[name] = m
    return out


def _masks(shape):
    core = np.zeros(shape, bool)
    core[2:5, 3:6, 1] = True
    pen = np.zeros(shape, bool)
    pen[5:9, 2:8, 1:] = True
    return {"core": core, "penumbra": pen}


def _on_study_grid(vol, study: Study) -> np.ndarray:
    """A highdicom Volume's values at the study's voxels (x, y, z[, ...]), checking that
    every study voxel centre falls exactly on one of its voxel centres."""
    # highdicom: (slice, row, column) indices -> LPS mm; ours: (x, y, z) -> RAS mm
    to_theirs = np.linalg.inv(LPS_RAS @ vol.affine) @ study.affine
    np.testing.assert_allclose(to_theirs, np.rint(to_theirs), atol=1e-4)
    idx = np.indices(study.shape).reshape(3, -1)
    theirs = np.rint(to_theirs[:3, :3] @ idx + to_theirs[:3, 3:4]).astype(int)
    return vol.array[theirs[0], theirs[1], theirs[2]].reshape(study.shape + vol.array.shape[3:])


def _pm_values(path, study: Study) -> np.ndarray:
    """Physical values (highdicom applies the real world value mapping) on the study grid."""
    pm = hd.pm.ParametricMap.from_dataset(pydicom.dcmread(path))
    return _on_study_grid(pm.get_volume(), study).astype(np.float64)


def test_parametric_maps_round_trip(tmp_path):
    study = _oblique_study()
    maps, masks = _maps(study.shape), _masks(study.shape)
    info = export_dicom(maps, masks, study, tmp_path / "dicom", method="nlr")
    assert info["reference_synthetic"] is True
    refs = sorted((tmp_path / "dicom" / "CT_reference").iterdir())
    assert len(refs) == study.shape[2]
    ref_uids = {str(pydicom.dcmread(p).SOPInstanceUID) for p in refs}
    for name, values in maps.items():
        path = info["files"][f"pm_{name}"]
        ds = pydicom.dcmread(path)
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.30"  # Parametric Map Storage
        assert ds.PatientID == "EXPORT-01"
        assert ds.StudyInstanceUID == info["study_uid"]
        assert ds.FrameOfReferenceUID == info["frame_of_reference_uid"]
        rwvm = ds.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0]
        unit = rwvm.MeasurementUnitsCodeSequence[0]
        assert unit.CodingSchemeDesignator == "UCUM"
        assert unit.CodeValue == MAP_CODES[name]["unit"][1]
        assert rwvm.RealWorldValueSlope == PM_SLOPE and rwvm.RealWorldValueIntercept == 0
        sources = {
            str(item.ReferencedSOPInstanceUID)
            for item in ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence
        }
        assert sources == ref_uids
        assert ds.pixel_array.dtype == np.uint16 and ds.BitsStored == 16
        assert ds.pixel_array.shape == (study.shape[2], study.shape[1], study.shape[0])
        physical = _pm_values(path, study)
        expected = np.nan_to_num(values, nan=0.0)
        np.testing.assert_allclose(physical, expected, atol=PM_SLOPE / 2 + 1e-6)
    units = {
        n: pydicom.dcmread(info["files"][f"pm_{n}"])
        .SharedFunctionalGroupsSequence[0]
        .RealWorldValueMappingSequence[0]
        .MeasurementUnitsCodeSequence[0]
        .CodeValue
        for n in ("cbf", "cbv", "tmax")
    }
    assert units == {"cbf": "mL/(100.g.min)", "cbv": "mL/(100.g)", "tmax": "s"}


def test_segmentation_round_trip(tmp_path):
    study = _oblique_study()
    masks = _masks(study.shape)
    info = export_dicom(_maps(study.shape), masks, study, tmp_path / "dicom")
    seg = hd.seg.segread(info["files"]["seg"])
    assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"
    assert seg.SegmentationType == "BINARY"
    labels = [s.SegmentLabel for s in seg.SegmentSequence]
    assert labels == ["Ischaemic core", "Penumbra"]
    assert seg.StudyInstanceUID == info["study_uid"]
    assert seg.FrameOfReferenceUID == info["frame_of_reference_uid"]
    vol = seg.get_volume(combine_segments=False)  # (slice, row, col, segment)
    got = _on_study_grid(vol, study).astype(bool)
    np.testing.assert_array_equal(got[..., 0], masks["core"])
    np.testing.assert_array_equal(got[..., 1], masks["penumbra"])


@pytest.mark.filterwarnings("ignore:The string .* person name")
def test_references_the_source_dicom_series(tmp_path):
    study = _oblique_study()
    folder = write_dicom_study(study, tmp_path / "ctp", uid_seed="source")
    loaded = load_study(folder)
    info = export_dicom(_maps(loaded.shape), _masks(loaded.shape), loaded, tmp_path / "dicom")
    assert info["reference_synthetic"] is False
    assert not (tmp_path / "dicom" / "CT_reference").exists()
    first = {}
    for p in folder.glob("*.dcm"):
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        if int(ds.TemporalPositionIndex) == 1:
            first[str(ds.SOPInstanceUID)] = ds
    some = next(iter(first.values()))
    for path in [info["files"]["pm_cbf"], info["files"]["seg"]]:
        ds = pydicom.dcmread(path)
        assert ds.StudyInstanceUID == some.StudyInstanceUID == loaded.metadata["study_instance_uid"]
        assert ds.FrameOfReferenceUID == some.FrameOfReferenceUID
        assert ds.PatientID == some.PatientID
        refs = ds.ReferencedSeriesSequence[0]
        assert refs.SeriesInstanceUID == some.SeriesInstanceUID
        assert {str(i.ReferencedSOPInstanceUID) for i in refs.ReferencedInstanceSequence} == set(
            first
        )
    values = _pm_values(info["files"]["pm_cbf"], loaded)
    expected = np.nan_to_num(_maps(loaded.shape)["cbf"], nan=0.0)
    np.testing.assert_allclose(values, expected, atol=PM_SLOPE / 2 + 1e-6)


def test_reference_uids_stable_for_one_study(tmp_path):
    study = _oblique_study()
    a = export_dicom(_maps(study.shape), _masks(study.shape), study, tmp_path / "a")
    b = export_dicom(_maps(study.shape), _masks(study.shape), study, tmp_path / "b")
    assert a["study_uid"] == b["study_uid"]
    pa = pydicom.dcmread(a["files"]["pm_cbf"])
    pb = pydicom.dcmread(b["files"]["pm_cbf"])
    assert pa.SOPInstanceUID != pb.SOPInstanceUID  # new objects every run


def test_bad_input_writes_nothing(tmp_path):
    study = _oblique_study()
    maps = _maps(study.shape)
    maps["cbf"] = maps["cbf"][:, :, :2]
    with pytest.raises(InputError, match="cbf"):
        export_dicom(maps, _masks(study.shape), study, tmp_path / "dicom")
    assert not (tmp_path / "dicom").exists()
    with pytest.raises(InputError, match="masks"):
        export_dicom(_maps(study.shape), {}, study, tmp_path / "dicom")
    assert not (tmp_path / "dicom").exists()
    assert not list(tmp_path.iterdir())


@pytest.mark.filterwarnings("ignore:The string .* person name")
def test_export_reads_no_source_file_again(tmp_path):
    """The study keeps its source headers: the export works with the source folder gone."""
    study = _oblique_study()
    folder = write_dicom_study(study, tmp_path / "ctp", uid_seed="source")
    loaded = load_study(folder)
    source = loaded.source_images
    assert source is not None and not source.multiframe
    assert len(source.headers) == loaded.shape[2]
    assert all("PixelData" not in ds for ds in source.headers)
    assert [len(row) for row in source.images] == [loaded.n_frames] * loaded.shape[2]
    uids = {
        pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in folder.glob("*.dcm")
    }
    assert {ref.sop_instance_uid for row in source.images for ref in row} == uids
    folder.rename(tmp_path / "gone")
    info = export_dicom(_maps(loaded.shape), _masks(loaded.shape), loaded, tmp_path / "dicom")
    assert info["reference_synthetic"] is False
    ds = pydicom.dcmread(info["files"]["pm_cbf"])
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == source.series_instance_uid


def test_nifti_study_has_no_source_images(tmp_path):
    from ctpmaps.io import write_nifti_study

    path = write_nifti_study(_oblique_study(), tmp_path / "ctp.nii.gz")
    assert load_study(path).source_images is None

"""4D NIfTI studies: frame times from the sidecar or the header, and bad input."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from ctpmaps.errors import InputError
from ctpmaps.io import Study, load_study, read_nifti_study, write_nifti_study
from ctpmaps.io.nifti import sidecar_path


def _study(nt: int = 5, dtype=np.float32) -> Study:
    rng = np.random.default_rng(0)
    frames = (rng.normal(30, 10, (6, 5, 3, nt))).astype(dtype)
    aff = np.diag([-0.5, -0.5, 5.0, 1.0])
    aff[:3, 3] = [10, 20, -7.5]
    return Study(frames, aff, np.array([0.0, 0.5, 1.0, 2.0, 3.5])[:nt])


@pytest.mark.parametrize("dtype", ["int16", "float32"])
def test_round_trip(tmp_path, dtype):
    s = _study()
    path = write_nifti_study(s, tmp_path / "ctp.nii.gz", dtype=dtype)
    assert sidecar_path(path).name == "ctp.json"
    back = load_study(path)
    assert back.source == "nifti"
    atol = 0.5 if dtype == "int16" else 0
    np.testing.assert_allclose(back.frames, s.frames, atol=atol)
    np.testing.assert_allclose(back.times, s.times)
    np.testing.assert_allclose(back.affine, s.affine, atol=1e-5)
    assert json.loads(sidecar_path(path).read_text())["FrameTimes"] == list(s.times)


def test_times_from_header_without_sidecar(tmp_path):
    data = np.zeros((4, 4, 2, 6), np.int16)
    img = nib.Nifti1Image(data, np.eye(4))
    img.header.set_xyzt_units("mm", "msec")
    img.header.set_zooms((1, 1, 1, 500))
    nib.save(img, tmp_path / "x.nii")
    s = read_nifti_study(tmp_path / "x.nii")
    np.testing.assert_allclose(s.times, np.arange(6) * 0.5)
    assert "header" in s.metadata["times_from"]


@pytest.mark.parametrize("name", ["x.nii", "x.nii.gz"])
def test_scaled_int16_frames_read_as_nibabel_scales_them(tmp_path, name):
    """Stored int16 with scl_slope and scl_inter: the frames (converted while reordered to
    C order) equal nibabel's own scaled float32 array."""
    data = np.random.default_rng(3).integers(-300, 3000, (9, 7, 3, 5)).astype(np.int16)
    img = nib.Nifti1Image(data, np.eye(4))
    img.header.set_slope_inter(0.5, -1024.0)
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_zooms((1, 1, 1, 1.5))
    nib.save(img, tmp_path / name)
    s = read_nifti_study(tmp_path / name)
    reference = np.asarray(nib.load(tmp_path / name).dataobj, dtype=np.float32)
    assert s.frames.flags.c_contiguous and s.frames.dtype == np.float32
    np.testing.assert_array_equal(s.frames, reference)
    np.testing.assert_array_equal(s.frames, data * np.float32(0.5) - np.float32(1024.0))


def _save(tmp_path, data, zooms=(1, 1, 1, 0)):
    img = nib.Nifti1Image(data, np.eye(4))
    img.header.set_zooms(zooms[: data.ndim])
    path = tmp_path / "bad.nii.gz"
    nib.save(img, path)
    return path


def test_nan_is_named(tmp_path):
    data = np.zeros((4, 4, 2, 3), np.float32)
    data[1, 2, 0, 2] = np.nan
    path = _save(tmp_path, data, (1, 1, 1, 1))
    with pytest.raises(InputError, match=r"bad\.nii\.gz: 1 NaN.*\(1, 2, 0\), frame 2"):
        read_nifti_study(path)


def test_3d_image_rejected(tmp_path):
    with pytest.raises(InputError, match="expected a 4D image"):
        read_nifti_study(_save(tmp_path, np.zeros((4, 4, 2), np.float32)))


def test_no_times_rejected(tmp_path):
    with pytest.raises(InputError, match="no frame times"):
        read_nifti_study(_save(tmp_path, np.zeros((4, 4, 2, 3), np.float32)))


def test_sidecar_mismatch_rejected(tmp_path):
    path = _save(tmp_path, np.zeros((4, 4, 2, 3), np.float32))
    sidecar_path(path).write_text(json.dumps({"FrameTimes": [0, 1]}))
    with pytest.raises(InputError, match="FrameTimes has 2 values, the image has 3 frames"):
        read_nifti_study(path)
    sidecar_path(path).write_text(json.dumps({"FrameTimes": [0, 2, 1]}))
    with pytest.raises(InputError, match="not strictly increasing"):
        read_nifti_study(path)
    sidecar_path(path).write_text("{not json")
    with pytest.raises(InputError, match="bad.json: cannot read the JSON sidecar"):
        read_nifti_study(path)


def test_truncated_file_rejected(tmp_path):
    path = write_nifti_study(_study(), tmp_path / "ctp.nii.gz")
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError, match="ctp.nii.gz: corrupted or truncated gzip data"):
        read_nifti_study(path)


def test_load_study_rejects_other_files(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="notes.txt: expected a NIfTI file"):
        load_study(tmp_path / "notes.txt")
    with pytest.raises(InputError, match="no such file or folder"):
        load_study(tmp_path / "missing")


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(nib, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        write_nifti_study(_study(), tmp_path / "ctp.nii.gz")
    assert list(tmp_path.iterdir()) == []


def test_anonymized_sidecar_has_no_identifiers(tmp_path):
    s = _study()
    s.metadata.update({"patient_id": "MRN-1", "patient_name": "Doe^Jane", "kvp": 80.0})
    path = write_nifti_study(s, tmp_path / "a.nii.gz", extra={"PatientBirthDate": "19480213"})
    assert "MRN-1" in sidecar_path(path).read_text()
    path = write_nifti_study(
        s, tmp_path / "b.nii.gz", extra={"PatientBirthDate": "19480213"}, anonymize=True
    )
    side = json.loads(sidecar_path(path).read_text())
    assert side["kvp"] == 80.0
    assert not {"patient_id", "patient_name", "PatientBirthDate"} & set(side)


def test_5d_with_singleton_fourth_axis_is_4d(tmp_path):
    """ISLES 2018 ships CT perfusion as (x, y, z, 1, t), time step in pixdim[5]."""
    s = _study()
    img = nib.Nifti1Image(s.frames[:, :, :, None, :], s.affine)
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_zooms((0.5, 0.5, 5.0, 1.0, 1.5))
    nib.save(img, tmp_path / "isles.nii.gz")
    read = read_nifti_study(tmp_path / "isles.nii.gz")
    np.testing.assert_array_equal(read.frames, s.frames)
    np.testing.assert_allclose(read.times, 1.5 * np.arange(5))


@pytest.mark.parametrize(("unit", "scale"), [("ms", 1e-3), ("s", 1.0), ("min", 60.0)])
def test_frame_times_units_are_honoured(tmp_path, unit, scale):
    path = _save(tmp_path, np.zeros((4, 4, 2, 3), np.float32))
    sidecar_path(path).write_text(json.dumps({"FrameTimes": [0, 2, 5], "FrameTimesUnits": unit}))
    np.testing.assert_allclose(read_nifti_study(path).times, np.array([0, 2, 5]) * scale)


def test_frame_times_in_ms_without_units_are_implausible(tmp_path):
    path = _save(tmp_path, np.zeros((4, 4, 2, 3), np.float32))
    sidecar_path(path).write_text(json.dumps({"FrameTimes": [0, 22000, 44000]}))
    with pytest.raises(InputError, match="span 44000 s .*FrameTimesUnits"):
        read_nifti_study(path)


def test_gzip_crc_is_checked(tmp_path):
    """nibabel reads only the data, so a bad CRC alone would load; the reader checks it."""
    path = write_nifti_study(_study(), tmp_path / "ctp.nii.gz")
    raw = bytearray(path.read_bytes())
    raw[-8] ^= 0xFF  # the stored CRC-32
    path.write_bytes(bytes(raw))
    np.asarray(nib.load(path).dataobj)  # nibabel alone does not notice
    with pytest.raises(InputError, match="CRC check failed"):
        read_nifti_study(path)

"""Tests of `ctpmaps.io.dicom`: writing scanner-like CT series and reading them back."""

from __future__ import annotations

import datetime as dt
import logging
import random
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_edits import dicom_files, edit, edit_all
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from ctpmaps.errors import InputError
from ctpmaps.io.dicom import (
    read_dicom_study,
    read_dicom_volume,
    write_dicom_study,
    write_dicom_volume,
)
from ctpmaps.io.study import Study
from ctpmaps.io.testing.samples import write_enhanced_ct

TIMES = np.array([0.0, 1.0, 2.5, 3.0, 4.75])  # as in conftest.make_study


# ----------------------------------------------------------------------------- helpers
def file_of(folder: Path, *, slice_index: int, frame_index: int, n_slices: int = 3) -> Path:
    """The file of one slice and frame (both from 0) written by `write_dicom_study`."""
    return folder / f"IM{frame_index * n_slices + slice_index + 1:05d}.dcm"


def assert_same(read: Study, written: Study) -> None:
    np.testing.assert_array_equal(read.frames, np.rint(written.frames))
    np.testing.assert_allclose(read.times, written.times, atol=1e-5)
    np.testing.assert_allclose(read.affine, written.affine, atol=1e-5)
    assert read.frames.dtype == np.float32
    assert read.frames.flags.c_contiguous


# ----------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("compression", [None, "jpeg-lossless", "jpeg-ls", "jpeg2000", "rle"])
def test_round_trip_every_compression(tmp_path, make_study, compression):
    if compression == "jpeg-lossless":
        pytest.importorskip("imagecodecs", reason="jpeg-lossless encoding needs imagecodecs")
    study = make_study(nx=32, ny=36, nz=2, times=TIMES[:4])  # jpeg2000 needs >= 32 pixels
    out = write_dicom_study(study, tmp_path / "s", compression=compression)
    read = read_dicom_study(out)
    assert_same(read, study)
    ts = str(
        pydicom.dcmread(dicom_files(out)[0], stop_before_pixels=True).file_meta.TransferSyntaxUID
    )
    assert read.metadata["transfer_syntax"] == ts
    expected = {
        None: "1.2.840.10008.1.2.1",
        "jpeg-lossless": "1.2.840.10008.1.2.4.70",
        "jpeg-ls": "1.2.840.10008.1.2.4.80",
        "jpeg2000": "1.2.840.10008.1.2.4.90",
        "rle": "1.2.840.10008.1.2.5",
    }
    assert ts == expected[compression]
    assert read.source == "dicom" and read.problems == []


def test_jpeg_lossless_is_first_order_prediction(tmp_path, study):
    """Transfer syntax .70 demands predictor 1 (SV1) in the JPEG start-of-scan header."""
    pytest.importorskip("imagecodecs")
    out = write_dicom_study(study, tmp_path / "s", compression="jpeg-lossless")
    ds = pydicom.dcmread(dicom_files(out)[0])
    from pydicom.encaps import generate_fragments

    stream = b"".join(generate_fragments(ds.PixelData))
    sos = stream.index(b"\xff\xda")
    n_components = stream[sos + 4]
    predictor = stream[sos + 5 + 2 * n_components]
    assert stream.find(b"\xff\xc3") >= 0  # SOF3: lossless
    assert predictor == 1


@pytest.mark.parametrize(("bits", "signed"), [(16, True), (16, False), (12, True), (12, False)])
def test_fast_jpeg_lossless_plugin_matches_pylibjpeg(tmp_path, bits, signed):
    """The imagecodecs plugin registered with pydicom decodes as pylibjpeg-libjpeg does."""
    imagecodecs = pytest.importorskip("imagecodecs")
    from pydicom.encaps import encapsulate
    from pydicom.pixels import pixel_array

    from ctpmaps.io.dicom.codecs import FAST_JPEG_PLUGIN, decoding_plugin

    # the plugin is registered the first time the reader asks for it, as here
    assert decoding_plugin("1.2.840.10008.1.2.4.70") == FAST_JPEG_PLUGIN

    rng = np.random.default_rng(3)
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1)) if signed else (0, 2**bits)
    values = rng.integers(lo, hi, (20, 24)).astype(np.int32)
    pattern = (values & (2**bits - 1)).astype(np.uint16)  # two's complement in `bits` bits
    encoded = imagecodecs.jpeg8_encode(pattern, lossless=True, predictor=1, bitspersample=bits)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.70"
    ds.Rows, ds.Columns, ds.SamplesPerPixel = 20, 24, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits, bits - 1
    ds.PixelRepresentation = int(signed)
    ds.PixelData = encapsulate([bytes(encoded)])
    ds["PixelData"].VR = "OB"
    fast = pixel_array(ds, decoding_plugin=FAST_JPEG_PLUGIN)
    reference = pixel_array(ds, decoding_plugin="pylibjpeg")
    np.testing.assert_array_equal(fast, reference)
    np.testing.assert_array_equal(fast, values)


@pytest.mark.parametrize("signed", [True, False])
def test_round_trip_unsigned_and_slope(tmp_path, make_study, signed):
    study = make_study()
    study.frames[:] = np.clip(study.frames, -1024, None) / 2  # half-HU values need slope 0.5
    out = write_dicom_study(study, tmp_path / "s", signed=signed, rescale_slope=0.5)
    read = read_dicom_study(out)
    np.testing.assert_array_equal(read.frames, study.frames)


def test_oblique_geometry_and_any_file_order(tmp_path, make_study):
    study = make_study()
    angle = np.deg2rad(20)
    rot = np.array(
        [[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]]
    )
    study.affine[:3, :3] = rot @ study.affine[:3, :3]
    out = write_dicom_study(study, tmp_path / "s")
    scrambled = tmp_path / "scrambled"
    files = dicom_files(out)
    random.Random(1).shuffle(files)
    for i, path in enumerate(files):  # any names, nested folders
        target = scrambled / f"sub{i % 3}" / f"x{i * 7919 % 1000:03d}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    assert_same(read_dicom_study(scrambled), study)


def test_metadata(ctp_folder):
    read = read_dicom_study(ctp_folder)
    meta = read.metadata
    assert meta["modality"] == "CT" and meta["kvp"] == 80.0 and meta["exposure_mas"] == 150.0
    assert meta["patient_id"] == "CTPMAPS-0001" and meta["slice_thickness_mm"] == 5.0
    assert meta["series_description"] == "CT perfusion" and meta["manufacturer"] == "ctpmaps"
    for key in ("study_instance_uid", "series_instance_uid", "frame_of_reference_uid"):
        assert meta[key].startswith("1.2.")
    assert meta["transfer_syntax"] == "1.2.840.10008.1.2.1"
    assert read.path == ctp_folder


def test_written_tags_are_scanner_like(ctp_folder):
    ds = pydicom.dcmread(file_of(ctp_folder, slice_index=1, frame_index=2))
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2" and ds.Modality == "CT"
    assert ds.InstanceNumber == 2 * 3 + 1 + 1 and ds.TemporalPositionIndex == 3
    assert ds.AcquisitionNumber == 3
    assert ds.AcquisitionTime == "090002.500000" and ds.ContentTime == "090002.500000"
    assert float(ds.WindowCenter) == 40 and float(ds.WindowWidth) == 400
    assert ds.ImageOrientationPatient == [1, 0, 0, 0, 1, 0]  # from RAS diag(-x, -y, z)
    assert [float(v) for v in ds.PixelSpacing] == [0.6, 0.5]  # rows, columns
    assert float(ds.SpacingBetweenSlices) == 5.0 and float(ds.SliceThickness) == 5.0
    assert [float(v) for v in ds.ImagePositionPatient] == [-4.0, -3.5, -5.0]  # LPS
    assert (ds.Rows, ds.Columns) == (12, 16)


def test_deterministic_uids_with_seed(tmp_path, study):
    a = write_dicom_study(study, tmp_path / "a", uid_seed="p1")
    b = write_dicom_study(study, tmp_path / "b", uid_seed="p1")
    c = write_dicom_study(study, tmp_path / "c", uid_seed="p2")
    uid = [pydicom.dcmread(dicom_files(f)[0]).SOPInstanceUID for f in (a, b, c)]
    assert uid[0] == uid[1] != uid[2]
    series = {pydicom.dcmread(p).SeriesInstanceUID for p in dicom_files(a)}
    assert len(series) == 1


def test_enhanced_multiframe_ct(tmp_path, study):
    path = write_enhanced_ct(study, tmp_path / "enh" / "ctp.dcm")
    read = read_dicom_study(path.parent)
    assert_same(read, study)
    assert read.metadata["series_description"] == "enhanced CTP"
    assert_same(read_dicom_study(path), study)  # a single file is accepted too


# ----------------------------------------------------------------------------- time sources
def _drop(*keys):
    def change(ds):
        for key in keys:
            if key in ds:
                delattr(ds, key)

    return change


def test_content_time_when_no_acquisition_time(ctp_folder, study):
    edit_all(ctp_folder, _drop("AcquisitionDateTime", "AcquisitionTime", "AcquisitionDate"))
    assert_same(read_dicom_study(ctp_folder), study)


def test_trigger_time_last(ctp_folder, study):
    def change(ds):
        ds.TriggerTime = 1000.0 * float(study.times[ds.TemporalPositionIndex - 1]) + 7.0

    edit_all(ctp_folder, change)
    edit_all(ctp_folder, _drop("AcquisitionDateTime", "AcquisitionTime", "ContentTime"))
    assert_same(read_dicom_study(ctp_folder), study)


def test_constant_acquisition_time_falls_back_to_content_time(ctp_folder, study):
    def change(ds):
        ds.AcquisitionTime = "090000"
        del ds.AcquisitionDateTime

    edit_all(ctp_folder, change)
    read = read_dicom_study(ctp_folder)
    assert_same(read, study)
    assert any("repeats within a slice" in p for p in read.problems)


def test_midnight_without_dates(tmp_path, study):
    out = write_dicom_study(study, tmp_path / "s", start=dt.datetime(2024, 1, 1, 23, 59, 58))
    assert_same(read_dicom_study(out), study)  # with dates
    edit_all(out, _drop("AcquisitionDateTime", "AcquisitionDate", "ContentDate"))
    read = read_dicom_study(out)
    assert_same(read, study)
    assert any("midnight" in p for p in read.problems)


def test_no_times_needs_frame_interval(ctp_folder, study):
    edit_all(ctp_folder, _drop("AcquisitionDateTime", "AcquisitionTime", "ContentTime"))
    with pytest.raises(InputError, match="frame_interval") as err:
        read_dicom_study(ctp_folder)
    assert str(ctp_folder) in str(err.value)
    edit_all(ctp_folder, _drop("TemporalPositionIndex"))  # instance numbers only
    read = read_dicom_study(ctp_folder, frame_interval=2.0)
    np.testing.assert_allclose(read.times, 2.0 * np.arange(study.n_frames))
    np.testing.assert_array_equal(read.frames, study.frames)
    assert any("InstanceNumber" in p for p in read.problems)


def test_time_missing_in_one_file(ctp_folder):
    bad = file_of(ctp_folder, slice_index=2, frame_index=1)
    edit_all(ctp_folder, _drop("AcquisitionDateTime", "ContentTime"))
    edit(bad, _drop("AcquisitionTime"))
    with pytest.raises(InputError, match="AcquisitionTime") as err:
        read_dicom_study(ctp_folder)
    assert err.value.source == str(bad)


def test_bad_frame_interval(ctp_folder):
    with pytest.raises(InputError, match="frame_interval"):
        read_dicom_study(ctp_folder, frame_interval=0)


# ----------------------------------------------------------------------------- bad input
def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no DICOM files") as err:
        read_dicom_study(tmp_path / "empty")
    assert err.value.source == str(tmp_path / "empty")
    with pytest.raises(InputError, match="does not exist"):
        read_dicom_study(tmp_path / "nowhere")


def test_harmless_files_are_skipped(ctp_folder, study):
    for name in ("DICOMDIR", ".DS_Store", "Thumbs.db", "notes.txt", "info.json"):
        (ctp_folder / name).write_bytes(b"not image data")
    read = read_dicom_study(ctp_folder)
    assert_same(read, study)
    assert sum("skipped" in p for p in read.problems) == 5


def test_stray_files_are_skipped_and_listed(ctp_folder, study):
    """A viewer's file, a README without suffix, a DICOM object without pixels: skipped."""
    (ctp_folder / "scan.bin").write_bytes(b"\x00" * 300)
    (ctp_folder / "README").write_text("exported by a viewer\n")
    report = Dataset()
    report.file_meta = FileMetaDataset()
    report.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    report.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.67"  # X-Ray Radiation Dose SR
    report.SOPInstanceUID, report.SeriesInstanceUID = generate_uid(), generate_uid()
    report.Modality = "SR"
    report.save_as(ctp_folder / "dose_sr", enforce_file_format=True)
    read = read_dicom_study(ctp_folder)
    assert_same(read, study)
    skipped = [p for p in read.problems if p.startswith("skipped")]
    assert len(skipped) == 3
    assert any("scan.bin: not a DICOM file" in p for p in skipped)
    assert any("README: not a DICOM file" in p for p in skipped)
    assert any("dose_sr: no pixel data (X-Ray Radiation Dose SR" in p for p in skipped)


def test_only_junk_is_an_error(tmp_path):
    folder = tmp_path / "junk"
    folder.mkdir()
    (folder / "a.bin").write_bytes(b"\x00" * 300)
    with pytest.raises(InputError, match="no DICOM image file among 1 files") as err:
        read_dicom_study(folder)
    assert err.value.source == str(folder) and "a.bin" in str(err.value)


def test_truncated_file(ctp_folder):
    bad = file_of(ctp_folder, slice_index=0, frame_index=3)
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) - 100])
    with pytest.raises(InputError, match="pixel data") as err:
        read_dicom_study(ctp_folder)
    assert err.value.source == str(bad)


def test_truncated_header(ctp_folder):
    bad = file_of(ctp_folder, slice_index=0, frame_index=3)
    bad.write_bytes(bad.read_bytes()[:600])  # pydicom itself reads this without complaint
    with pytest.raises(InputError, match="missing frame at t = 3.00 s") as err:
        read_dicom_study(ctp_folder)  # cut before its series UID: the frame is missing
    assert f"files skipped: {bad.name}" in str(err.value)
    edit(file_of(ctp_folder, slice_index=1, frame_index=3), lambda ds: None)
    cut = file_of(ctp_folder, slice_index=1, frame_index=3)
    data = cut.read_bytes()
    cut.write_bytes(data[: data.index(b"\xe0\x7f\x10\x00")])  # just before PixelData
    with pytest.raises(InputError, match="truncated: the file ends before its pixel data"):
        read_dicom_study(ctp_folder)


def test_mixed_series(tmp_path, study):
    folder = tmp_path / "mixed"
    write_dicom_study(study, folder / "a", series_description="CTP A", uid_seed="a")
    write_dicom_study(study, folder / "b", series_description="CTP B", uid_seed="b")
    with pytest.raises(InputError, match="series_uid") as err:
        read_dicom_study(folder)
    assert "CTP A" in str(err.value) and "CTP B" in str(err.value) and "15 files" in str(err.value)
    uid_b = pydicom.dcmread(dicom_files(folder / "b")[0]).SeriesInstanceUID
    read = read_dicom_study(folder, series_uid=uid_b)
    assert read.metadata["series_description"] == "CTP B"
    assert any("CTP A" in p for p in read.problems)
    with pytest.raises(InputError, match="no series"):
        read_dicom_study(folder, series_uid="1.2.3")


def test_perfusion_series_beside_other_series(tmp_path, study):
    folder = tmp_path / "mixed"
    write_dicom_study(study, folder / "ctp", series_description="CTP", uid_seed="a")
    volume = study.frames[..., 0]
    write_dicom_volume(
        volume,
        study.affine,
        folder / "plain",
        series_description="plain CT",
        uid_seed="b",
        signed=True,
        rescale_intercept=-1024,
    )
    report = folder / "dose" / "report.dcm"  # a screenshot-like image without geometry
    report.parent.mkdir()
    shutil.copy(dicom_files(folder / "ctp")[0], report)

    def dose_report(ds):
        ds.SeriesInstanceUID, ds.SeriesDescription = "1.2.3.4", "Dose report"
        del ds.ImagePositionPatient, ds.ImageOrientationPatient

    edit(report, dose_report)
    read = read_dicom_study(folder)
    assert_same(read, study)
    assert any("plain CT" in p for p in read.problems)
    assert any("Dose report" in p for p in read.problems)
    with pytest.raises(InputError, match="ImagePositionPatient") as err:
        read_dicom_study(folder, series_uid="1.2.3.4")
    assert err.value.source == str(report)


def test_single_time_point_is_not_perfusion(tmp_path, study):
    out = write_dicom_volume(
        study.frames[..., 0], study.affine, tmp_path / "v", signed=True, rescale_intercept=-1024
    )
    with pytest.raises(InputError, match="one frame per slice"):
        read_dicom_study(out)


def test_wrong_modality(ctp_folder):
    def change(ds):
        ds.Modality = "MR"

    edit_all(ctp_folder, change)
    with pytest.raises(InputError, match="modality is 'MR'"):
        read_dicom_study(ctp_folder)


def test_missing_frame(ctp_folder):
    file_of(ctp_folder, slice_index=1, frame_index=2).unlink()
    with pytest.raises(
        InputError, match=r"has 4 frames, the other slices 5: missing frame at t = 2.50 s"
    ):
        read_dicom_study(ctp_folder)


def test_duplicate_frame(ctp_folder):
    original = file_of(ctp_folder, slice_index=1, frame_index=2)
    copy = ctp_folder / "copy.dcm"
    shutil.copy(original, copy)
    with pytest.raises(InputError, match="duplicate frame") as err:
        read_dicom_study(ctp_folder)
    assert original.name in str(err.value) and copy.name in str(err.value)


def test_slices_with_different_frame_counts(ctp_folder):
    for s in (1, 2):  # only slice 0 keeps the last frame
        file_of(ctp_folder, slice_index=s, frame_index=4).unlink()
    extra = file_of(ctp_folder, slice_index=0, frame_index=4)
    with pytest.raises(InputError, match="has 5 frames, the other slices 4") as err:
        read_dicom_study(ctp_folder)
    assert err.value.source == str(extra)


def test_non_monotonic_times_across_slices(ctp_folder):
    def shift(ds):  # slice 2 acquired 1.2 s late: its frames interleave with the others'
        if float(ds.SliceLocation) > -1:
            t = dt.datetime.strptime(ds.AcquisitionDateTime, "%Y%m%d%H%M%S.%f")
            ds.AcquisitionDateTime = (t + dt.timedelta(seconds=1.2)).strftime("%Y%m%d%H%M%S.%f")

    edit_all(ctp_folder, shift)
    with pytest.raises(InputError, match="not monotonic"):
        read_dicom_study(ctp_folder)


def test_slices_disagreeing_within_half_an_interval_are_noted(tmp_path, make_study):
    study = make_study(times=np.arange(5.0))
    out = write_dicom_study(study, tmp_path / "s")

    def shift(ds):  # the top slice acquired 0.6 s late
        if float(ds.SliceLocation) > -1:
            t = dt.datetime.strptime(ds.AcquisitionDateTime, "%Y%m%d%H%M%S.%f")
            ds.AcquisitionDateTime = (t + dt.timedelta(seconds=0.6)).strftime("%Y%m%d%H%M%S.%f")

    edit_all(out, shift)
    read = read_dicom_study(out)
    np.testing.assert_array_equal(read.frames, study.frames)
    np.testing.assert_allclose(read.times, study.times, atol=1e-5)  # median over slices
    assert any("0.60 s apart" in p for p in read.problems)


@pytest.mark.parametrize(
    ("tag", "value", "message"),
    [
        ("ImageOrientationPatient", [1, 0, 0, 0, 0.9, 0.43589], "ImageOrientationPatient"),
        ("PixelSpacing", [0.6, 0.55], "PixelSpacing"),
        ("Rows", 10, r"Rows x Columns .* = 10 x 16"),
    ],
)
def test_inconsistent_geometry(ctp_folder, tag, value, message):
    bad = file_of(ctp_folder, slice_index=2, frame_index=3)

    def change(ds):
        setattr(ds, tag, value)

    edit(bad, change)
    with pytest.raises(InputError, match=message) as err:
        read_dicom_study(ctp_folder)
    assert err.value.source == str(bad)


def test_compression_without_decoder(tmp_path, study, monkeypatch):
    out = write_dicom_study(study, tmp_path / "s", compression="jpeg-ls")
    from pydicom.pixels.decoders.base import Decoder

    monkeypatch.setattr(Decoder, "is_available", property(lambda self: False))
    with pytest.raises(InputError, match="JPEG-LS Lossless") as err:
        read_dicom_study(out)
    assert "1.2.840.10008.1.2.4.80" in str(err.value) and "pyjpegls" in str(err.value)
    assert err.value.source.startswith(str(out))


def test_decoder_failure_names_the_file(tmp_path, study, monkeypatch):
    out = write_dicom_study(study, tmp_path / "s", compression="rle")
    import ctpmaps.io.dicom.pixels as reader

    def broken(path, **kwargs):
        raise RuntimeError("decoder exploded")

    monkeypatch.setattr(reader, "pixel_array", broken)
    with pytest.raises(InputError, match="decoder exploded") as err:
        read_dicom_study(out, workers=1)
    assert err.value.source.startswith(str(out))


# ----------------------------------------------------------------------------- writer
def test_writer_refuses_existing_folder_and_overwrites(tmp_path, study):
    out = write_dicom_study(study, tmp_path / "s")
    with pytest.raises(InputError, match="overwrite"):
        write_dicom_study(study, out)
    study.frames += 1
    write_dicom_study(study, out, overwrite=True)
    assert_same(read_dicom_study(out), study)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]  # no temporary left


def test_writer_writes_nothing_on_bad_input(tmp_path, study, make_study):
    study.frames[0, 0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        write_dicom_study(study, tmp_path / "s")
    with pytest.raises(InputError, match="compression"):
        write_dicom_study(make_study(), tmp_path / "s", compression="zip")
    with pytest.raises(InputError, match="file_pattern"):
        write_dicom_study(make_study(), tmp_path / "s", file_pattern="IM{slice}.dcm")
    with pytest.raises(InputError, match="32 x 32"):
        write_dicom_study(make_study(), tmp_path / "s", compression="jpeg2000")
    assert list(tmp_path.iterdir()) == []


def test_writer_failure_midway_leaves_nothing(tmp_path, study, monkeypatch):
    import ctpmaps.io.dicom.write as writer

    calls = []

    def flaky(ds, stored, compression):
        calls.append(1)
        if len(calls) == 4:
            raise OSError("disk full")
        ds.PixelData = stored.tobytes()

    monkeypatch.setattr(writer, "_set_pixels", flaky)
    with pytest.raises(OSError, match="disk full"):
        write_dicom_study(study, tmp_path / "s", workers=1)
    assert list(tmp_path.iterdir()) == []


def test_writer_clips_with_warning(tmp_path, make_study, caplog):
    study = make_study()
    study.frames[0, 0, 0, 0] = -3000.0
    with caplog.at_level(logging.WARNING, logger="ctpmaps.io.dicom.write"):
        out = write_dicom_study(study, tmp_path / "s", signed=False)
    assert "1 voxels outside" in caplog.text
    assert read_dicom_study(out).frames[0, 0, 0, 0] == -1024.0


def test_volume_round_trip(tmp_path, study):
    volume = np.round(np.abs(study.frames[..., 0]) / 100, 2)
    out = write_dicom_volume(volume, study.affine, tmp_path / "v", rescale_slope=0.01)
    read = read_dicom_volume(out)
    np.testing.assert_allclose(read.data, volume, atol=1e-4)
    np.testing.assert_allclose(read.affine, study.affine, atol=1e-6)
    ds = pydicom.dcmread(dicom_files(out)[0])
    assert ds.PixelRepresentation == 0 and float(ds.RescaleSlope) == 0.01


def test_volume_rejects_two_images_at_one_position(tmp_path, study):
    out = write_dicom_volume(
        study.frames[..., 0], study.affine, tmp_path / "v", signed=True, rescale_intercept=-1024
    )
    shutil.copy(dicom_files(out)[0], out / "again.dcm")
    with pytest.raises(InputError, match="both at slice position"):
        read_dicom_volume(out)


def test_paths_accept_strings(tmp_path, study):
    out = write_dicom_study(study, str(tmp_path / "s"))
    assert isinstance(out, Path)
    assert_same(read_dicom_study(str(out)), study)


# ----------------------------------------------------------------------------- any folder
def _beside(folder: Path, study: Study, name: str, change, *, frames: int | None = None) -> None:
    """Another series written into ``folder/name`` from ``study``, each file changed."""
    part = (
        study
        if frames is None
        else Study(study.frames[..., :frames], study.affine, study.times[:frames])
    )
    write_dicom_study(part, folder / name, uid_seed=name, series_description=name)
    edit_all(folder / name, change)


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("localizer", lambda ds: setattr(ds, "ImageType", ["ORIGINAL", "PRIMARY", "LOCALIZER"])),
        ("surview", lambda ds: setattr(ds, "ImageType", ["DERIVED", "SECONDARY", "SURVIEW"])),
        ("derived", lambda ds: setattr(ds, "ImageType", ["DERIVED", "SECONDARY", "AXIAL"])),
        ("capture", lambda ds: setattr(ds, "SOPClassUID", "1.2.840.10008.5.1.4.1.1.7")),
        ("mr", lambda ds: setattr(ds, "Modality", "MR")),
    ],
)
def test_other_time_series_are_never_chosen(tmp_path, study, name, change):
    """A second series with several images per position that is not the perfusion series."""
    folder = tmp_path / "exam"
    write_dicom_study(study, folder / "ctp", uid_seed="ctp", series_description="CTP")
    _beside(folder, study, name, change)
    read = read_dicom_study(folder)
    assert_same(read, study)
    assert read.metadata["series_description"] == "CTP"
    assert any("ignored series" in p and name in p for p in read.problems)


def test_dicomdir_and_dirfile_are_not_series(ctp_folder, study):
    from pydicom.fileset import FileSet

    fs = FileSet()
    fs.add(dicom_files(ctp_folder)[0])
    fs.write(ctp_folder / "media")  # a DICOMDIR and a copy of one image under media/
    shutil.rmtree(ctp_folder / "media" / "PT000000")
    dirfile = ctp_folder / "DIRFILE"  # Philips: a DICOM file without SeriesInstanceUID
    shutil.copy(dicom_files(ctp_folder)[1], dirfile)
    edit(dirfile, lambda ds: delattr(ds, "SeriesInstanceUID"))
    read = read_dicom_study(ctp_folder)
    assert_same(read, study)
    assert any("DIRFILE: no SeriesInstanceUID" in p for p in read.problems)
    assert any("DICOMDIR" in p for p in read.problems)


@pytest.mark.parametrize("implicit", [True, False])
def test_file_without_preamble_and_meta_is_read(ctp_folder, study, implicit):
    """As old scanners write: a bare dataset. pydicom detects its encoding."""
    path = file_of(ctp_folder, slice_index=1, frame_index=2)
    ds = pydicom.dcmread(path)
    ds.preamble, ds.file_meta = None, FileMetaDataset()
    ds.save_as(path, implicit_vr=implicit, little_endian=True, enforce_file_format=False)
    assert b"DICM" not in path.read_bytes()[:200]
    read = read_dicom_study(ctp_folder)
    assert_same(read, study)


@pytest.mark.parametrize("compression", [None, "rle"])
def test_images_larger_than_the_deferred_size(tmp_path, make_study, compression):
    """Pixel data over 16 kB are read after the header pass, from the file (deferred)."""
    from ctpmaps.io.dicom.headers import _DEFER_BYTES

    study = make_study(nx=128, ny=96, nz=2, times=TIMES[:3])
    assert 128 * 96 * 2 > _DEFER_BYTES
    out = write_dicom_study(study, tmp_path / "big", compression=compression)
    assert_same(read_dicom_study(out, workers=2), study)


@pytest.mark.filterwarnings("ignore:The decoded RLE segment")
def test_corrupted_rle_segments_are_decoded_without_panic(tmp_path, make_study, capfd):
    """pylibjpeg-rle panics (Rust) on such data; the reader uses pydicom's RLE decoder."""
    import struct

    from pydicom.encaps import generate_frames

    out = write_dicom_study(make_study(nx=32, ny=36), tmp_path / "rle", compression="rle")
    bad = file_of(out, slice_index=0, frame_index=1)
    raw = bytearray(bad.read_bytes())
    frame = next(generate_frames(pydicom.dcmread(bad).PixelData, number_of_frames=1))
    at, segment = raw.find(frame[:64]), struct.unpack("<I", frame[4:8])[0]
    for j in range(segment, len(frame) - 2, 7):  # literal runs longer than the segment
        raw[at + j] = 127
    bad.write_bytes(bytes(raw))
    try:
        read = read_dicom_study(out)
    except InputError as exc:
        assert bad.name in str(exc)
    else:
        assert np.isfinite(read.frames).all()
    assert "panicked" not in capfd.readouterr().err

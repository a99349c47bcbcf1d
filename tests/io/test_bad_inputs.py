"""A catalogue of bad inputs: each kind built from the small synthetic study, each with its error.

Every case must raise `InputError` naming the file at fault (as its source, or in the
message when the file was skipped and the series then misses a frame) and the tag or the
problem. The fuzz test (`test_fuzz.py`) looks for what this list does not foresee.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_edits import dicom_files, edit, edit_all

from ctpmaps.errors import InputError
from ctpmaps.io import load_study, write_nifti_study
from ctpmaps.io.dicom import write_dicom_study
from ctpmaps.io.testing.mutations import (
    modality_lut,
    set_nifti_field,
    set_raw,
    set_transfer_syntax,
)
from ctpmaps.io.testing.samples import sample_study, write_enhanced_ct

pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR")

Builder = Callable[[Path], tuple[Path, Path]]  # tmp folder -> (what to load, file at fault)


# ----------------------------------------------------------------------------- DICOM
def _series(tmp: Path) -> tuple[Path, Path]:
    """The sample series and one file of it (slice 2, frame 3): the culprit."""
    folder = write_dicom_study(sample_study(), tmp / "ctp", uid_seed="bad")
    return folder, folder / "IM00008.dcm"


def _first(tmp: Path) -> tuple[Path, Path]:
    """The sample series and its first file: the one series metadata is read from."""
    folder, _ = _series(tmp)
    return folder, dicom_files(folder)[0]


def raw_value(keyword: str, value: bytes, *, first: bool = False, vr: str | None = None) -> Builder:
    def build(tmp: Path) -> tuple[Path, Path]:
        folder, bad = (_first if first else _series)(tmp)
        set_raw(bad, keyword, value, vr=vr)
        return folder, bad

    return build


def dicom_edit(change: Callable[[pydicom.Dataset], None]) -> Builder:
    def build(tmp: Path) -> tuple[Path, Path]:
        folder, bad = _series(tmp)
        edit(bad, change)
        return folder, bad

    return build


def meta_transfer_syntax(uid: str) -> Builder:
    def build(tmp: Path) -> tuple[Path, Path]:
        folder, bad = _series(tmp)
        set_transfer_syntax(bad, uid)
        return folder, bad

    return build


def byte_edit(change: Callable[[bytes], bytes]) -> Builder:
    def build(tmp: Path) -> tuple[Path, Path]:
        folder, bad = _series(tmp)
        bad.write_bytes(change(bad.read_bytes()))
        return folder, bad

    return build


def _unknown_vr(data: bytes) -> bytes:
    at = data.index(b"\x28\x00\x53\x10DS")  # RescaleSlope
    return data[: at + 4] + b"ZZ" + data[at + 6 :]


def _one_frame_a_day_late(tmp: Path) -> tuple[Path, Path]:
    folder, _ = _series(tmp)

    def shift(ds: pydicom.Dataset) -> None:
        if int(ds.TemporalPositionIndex) == 5:
            t = dt.datetime.strptime(ds.AcquisitionDateTime, "%Y%m%d%H%M%S.%f")
            ds.AcquisitionDateTime = (t + dt.timedelta(days=1)).strftime("%Y%m%d%H%M%S.%f")

    edit_all(folder, shift)
    late = next(p for p in dicom_files(folder) if pydicom.dcmread(p).TemporalPositionIndex == 5)
    return folder, late


def _enhanced_group_as_bytes(tmp: Path) -> tuple[Path, Path]:
    """An enhanced CT file whose first pixel value transformation group is not a sequence."""
    path = write_enhanced_ct(sample_study(), tmp / "enhanced" / "ctp.dcm")
    data = path.read_bytes()
    at = data.index(b"\x28\x00\x45\x91SQ")  # PixelValueTransformationSequence
    path.write_bytes(data[: at + 4] + b"OB" + data[at + 6 :])
    return path.parent, path


def _lut(entries: int, n_data: int) -> Callable[[pydicom.Dataset], None]:
    def change(ds: pydicom.Dataset) -> None:
        ds.ModalityLUTSequence = [modality_lut(entries, 0, n_data)]

    return change


def _no_series_uid(ds: pydicom.Dataset) -> None:
    del ds.SeriesInstanceUID


# ----------------------------------------------------------------------------- NIfTI
def _nifti(tmp: Path, name: str = "ctp.nii.gz") -> Path:
    return write_nifti_study(sample_study(), tmp / name)


def nifti_field(name: str, index: int, value) -> Builder:
    def build(tmp: Path) -> tuple[Path, Path]:
        path = _nifti(tmp)
        set_nifti_field(path, name, index, value)
        return path, path

    return build


def nifti_bytes(change: Callable[[bytes], bytes]) -> Builder:
    def build(tmp: Path) -> tuple[Path, Path]:
        path = _nifti(tmp)
        path.write_bytes(change(path.read_bytes()))
        return path, path

    return build


def sidecar(content: bytes) -> Builder:
    def build(tmp: Path) -> tuple[Path, Path]:
        path = _nifti(tmp)
        side = path.with_name("ctp.json")
        side.write_bytes(content)
        return path, side

    return build


def _flip_middle(data: bytes) -> bytes:
    out = bytearray(data)
    out[len(out) // 2] ^= 0x55
    return bytes(out)


def _nifti_3d(tmp: Path) -> tuple[Path, Path]:
    import nibabel as nib

    path = tmp / "three.nii"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 2), np.int16), np.eye(4)), path)
    return path, path


def _nifti_no_times(tmp: Path) -> tuple[Path, Path]:
    path = _nifti(tmp)
    path.with_name("ctp.json").unlink()
    set_nifti_field(path, "pixdim", 4, 0.0)
    return path, path


TIMES = json.dumps({"FrameTimes": [0, 1, 2.5, 3, 4.75]})

#: kind -> (builder, regex the message must match).
CATALOGUE: dict[str, tuple[Builder, str]] = {
    # header values of one DICOM file of the series
    "rescale-slope-text": (raw_value("RescaleSlope", b"abc"), r"RescaleSlope \(0028,1053\)"),
    "rescale-slope-multi": (raw_value("RescaleSlope", b"1\\2"), r"RescaleSlope .*one number"),
    "rescale-slope-nan": (raw_value("RescaleSlope", b"nan"), r"RescaleSlope .*got nan"),
    "rescale-slope-inf": (raw_value("RescaleSlope", b"inf"), r"RescaleSlope .*got inf"),
    "rescale-slope-zero": (raw_value("RescaleSlope", b"0"), r"RescaleSlope .*non-zero"),
    "rescale-intercept-text": (raw_value("RescaleIntercept", b"-1O24"), r"RescaleIntercept"),
    "rescale-intercept-huge": (raw_value("RescaleIntercept", b"1e300"), r"RescaleIntercept"),
    "unknown-vr": (byte_edit(_unknown_vr), r"unreadable"),
    "rows-zero": (dicom_edit(lambda ds: setattr(ds, "Rows", 0)), r"Rows \(0028,0010\)"),
    "rows-huge": (dicom_edit(lambda ds: setattr(ds, "Rows", 5000)), r"Rows .*4096"),
    "rows-not-the-data": (dicom_edit(lambda ds: setattr(ds, "Rows", 10)), r"PixelData .*holds"),
    "bits-allocated-8-on-16-bit-data": (
        dicom_edit(lambda ds: setattr(ds, "BitsAllocated", 8)),
        r"BitsStored \(0028,0101\): expected a number in \[1, 8\]",
    ),
    "bits-allocated-12": (
        dicom_edit(lambda ds: setattr(ds, "BitsAllocated", 12)),
        r"BitsAllocated .*8, 16 or 32",
    ),
    "bits-stored-over-allocated": (
        dicom_edit(lambda ds: setattr(ds, "BitsStored", 20)),
        r"BitsStored \(0028,0101\)",
    ),
    "samples-per-pixel-3": (
        dicom_edit(lambda ds: setattr(ds, "SamplesPerPixel", 3)),
        r"SamplesPerPixel",
    ),
    "photometric-rgb": (
        dicom_edit(lambda ds: setattr(ds, "PhotometricInterpretation", "RGB")),
        r"PhotometricInterpretation .*grey-scale",
    ),
    "number-of-frames-text": (raw_value("NumberOfFrames", b"abc"), r"NumberOfFrames \(0028,0008\)"),
    "number-of-frames-zero": (raw_value("NumberOfFrames", b"0"), r"NumberOfFrames"),
    "transfer-syntax-unknown": (meta_transfer_syntax("1.2.3.4"), r"not a known transfer syntax"),
    "transfer-syntax-private": (
        meta_transfer_syntax("1.2.826.0.1.3680043.9.1"),
        r"TransferSyntaxUID .*not a known transfer syntax",
    ),
    "transfer-syntax-deflated-but-not": (
        meta_transfer_syntax("1.2.840.10008.1.2.1.99"),
        r"unreadable DICOM header",
    ),
    "position-nan": (
        raw_value("ImagePositionPatient", b"nan\\0\\0"),
        r"ImagePositionPatient .*finite",
    ),
    "position-two-values": (
        raw_value("ImagePositionPatient", b"1\\2"),
        r"ImagePositionPatient .*3 numbers",
    ),
    "orientation-inf": (
        raw_value("ImageOrientationPatient", b"1\\0\\0\\0\\inf\\0"),
        r"ImageOrientationPatient",
    ),
    "orientation-not-unit": (
        raw_value("ImageOrientationPatient", b"1.4\\0\\0\\0\\1\\0"),
        r"ImageOrientationPatient .*unit vectors",
    ),
    "orientation-parallel": (
        raw_value("ImageOrientationPatient", b"1\\0\\0\\1\\0\\0"),
        r"not orthogonal",
    ),
    "spacing-zero": (raw_value("PixelSpacing", b"0\\0.5"), r"PixelSpacing .*\(0, 100\] mm"),
    "spacing-negative": (raw_value("PixelSpacing", b"-0.6\\0.5"), r"PixelSpacing"),
    "trigger-time-text": (raw_value("TriggerTime", b"soon"), r"TriggerTime \(0018,1060\)"),
    "trigger-time-multi": (raw_value("TriggerTime", b"1\\2"), r"TriggerTime .*one number"),
    "window-center-text": (raw_value("WindowCenter", b"abc", first=True), r"WindowCenter"),
    "kvp-multi": (raw_value("KVP", b"80\\120", first=True), r"KVP \(0018,0060\).*one number"),
    "kvp-text": (raw_value("KVP", b"eighty", first=True), r"KVP"),
    "slice-thickness-nan": (raw_value("SliceThickness", b"nan", first=True), r"SliceThickness"),
    "modality-lut-short": (dicom_edit(_lut(4, 2)), r"ModalityLUTSequence \(0028,3000\)"),
    "truncated-pixel-data": (byte_edit(lambda d: d[:-100]), r"truncated"),
    "frame-a-day-late": (_one_frame_a_day_late, r"frames span 864\d\d s"),
    "no-series-uid": (dicom_edit(_no_series_uid), r"missing frame .*no SeriesInstanceUID"),
    "enhanced-group-not-a-sequence": (
        _enhanced_group_as_bytes,
        r"PixelValueTransformationSequence \(0028,9145\): expected a sequence",
    ),
    # NIfTI and its sidecar
    "nifti-affine-nan": (nifti_field("srow_x", 0, float("nan")), r"affine is not finite"),
    "nifti-affine-singular": (nifti_field("srow_y", 1, 0.0), r"or singular"),
    "nifti-gzip-crc": (nifti_bytes(lambda d: d[:-8] + bytes([d[-8] ^ 1]) + d[-7:]), r"CRC"),
    "nifti-gzip-flipped": (nifti_bytes(_flip_middle), r"gzip data|CRC"),
    "nifti-gzip-truncated": (nifti_bytes(lambda d: d[: len(d) // 2]), r"truncated gzip"),
    "nifti-not-gzip": (nifti_bytes(gzip.decompress), r"not a readable NIfTI|gzip"),
    "nifti-dims-beyond-file": (nifti_field("dim", 1, 30000), r"header announces"),
    "nifti-values-huge": (nifti_field("scl_slope", 0, 1e30), r"not CT attenuation"),
    "nifti-3d": (_nifti_3d, r"expected a 4D image"),
    "nifti-empty-axis": (nifti_field("dim", 2, 0), r"no empty axis"),
    "nifti-no-times": (_nifti_no_times, r"no frame times"),
    "sidecar-not-utf8": (
        sidecar(b'{"FrameTimes": [0, 1, 2.5, 3, 4.75], "x": "\xe9"}'),
        r"not UTF-8",
    ),
    "sidecar-not-json": (sidecar(b"{FrameTimes: [0, 1"), r"cannot read the JSON sidecar"),
    "sidecar-not-object": (sidecar(b"[0, 1, 2.5, 3, 4.75]"), r"holds a list, expected an object"),
    "sidecar-nan-literal": (sidecar(b'{"FrameTimes": [0, NaN, 2, 3, 4]}'), r"NaN is not a JSON"),
    "sidecar-times-text": (
        sidecar(json.dumps({"FrameTimes": ["0", "1", "2", "3", "4"]}).encode()),
        r"FrameTimes: expected a list of numbers",
    ),
    "sidecar-times-short": (
        sidecar(json.dumps({"FrameTimes": [0, 1, 2]}).encode()),
        r"FrameTimes has 3 values, the image has 5",
    ),
    "sidecar-units-unknown": (
        sidecar(json.dumps({"FrameTimes": [0, 1, 2, 3, 4], "FrameTimesUnits": "h"}).encode()),
        r"FrameTimesUnits: expected one of",
    ),
    "sidecar-ms-without-units": (
        sidecar(json.dumps({"FrameTimes": [0, 1000, 2500, 3000, 44000]}).encode()),
        r"span 44000 s",
    ),
}


def test_catalogue_is_large() -> None:
    assert len(CATALOGUE) >= 30


@pytest.mark.parametrize("kind", sorted(CATALOGUE))
def test_bad_input_is_named(tmp_path, kind):
    build, expected = CATALOGUE[kind]
    target, culprit = build(tmp_path)
    with pytest.raises(InputError) as err:
        load_study(target)
    message = str(err.value)
    assert err.value.source == str(culprit) or culprit.name in message, message
    assert re.search(expected, message), message
    assert "Traceback" not in message


def test_stray_files_do_not_stop_a_folder(tmp_path):
    """The good counterpart: junk beside a good series is skipped, not an error."""
    folder, _ = _series(tmp_path)
    shutil.copy(folder / "IM00001.dcm", folder / "copy_without_series")
    edit(folder / "copy_without_series", _no_series_uid)
    (folder / "viewer.db").write_bytes(b"\x00SQLite format 3\x00" + bytes(100))
    study = load_study(folder)
    assert len([p for p in study.problems if p.startswith("skipped")]) == 2


def test_a_folder_holding_a_nifti_study_names_the_file_to_pass(tmp_path):
    """The phantom's patient folder (MOL-XXX/ctp.nii.gz, no DICOM) given as the study."""
    folder = tmp_path / "MOL-001"
    folder.mkdir()
    write_nifti_study(sample_study(), folder / "ctp.nii.gz")
    with pytest.raises(InputError, match="no DICOM image file") as err:
        load_study(folder)
    assert err.value.source == str(folder)
    assert str(folder / "ctp.nii.gz") in str(err.value)
    assert load_study(folder / "ctp.nii.gz").frames.ndim == 4  # the file it names loads

"""Small studies in every layout the readers take, for tests and fuzzing.

`sample_study` makes a tiny synthetic CT perfusion study (integer HU, irregular frame
times, a scanner-like affine); `write_samples` writes it as every kind of input:
uncompressed, RLE and JPEG Lossless DICOM series, one enhanced multi-frame DICOM file, a
NIfTI with its JSON sidecar and a 5D NIfTI as ISLES 2018 ships it.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import nibabel as nib
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import EnhancedCTImageStorage, ExplicitVRLittleEndian, generate_uid

from ..dicom.geometry import slice_geometry
from ..dicom.write import write_dicom_study
from ..nifti import write_nifti_study
from ..study import Study

__all__ = ["TIMES", "sample_study", "write_enhanced_ct", "write_samples", "SAMPLE_KINDS"]

#: Irregular frame times (s) so that ordering and spacing errors show.
TIMES = np.array([0.0, 1.0, 2.5, 3.0, 4.75])

#: What `write_samples` writes: kind -> path relative to its root.
SAMPLE_KINDS = {
    "dicom": "dicom",
    "dicom-rle": "dicom-rle",
    "dicom-jpeg-lossless": "dicom-jpeg-lossless",
    "dicom-enhanced": "dicom-enhanced",
    "nifti": "nifti/ctp.nii.gz",
    "nifti-5d": "nifti-5d/ctp.nii",
}


def sample_study(
    nx: int = 16, ny: int = 12, nz: int = 3, times: np.ndarray = TIMES, seed: int = 0
) -> Study:
    """Integer HU frames (x, y, z, t) with distinct x and y sizes, a scanner-like affine.

    Examples
    --------
    >>> sample_study().frames.shape
    (16, 12, 3, 5)
    """
    rng = np.random.default_rng(seed)
    frames = rng.integers(-1024, 1500, (nx, ny, nz, len(times))).astype(np.float32)
    affine = np.diag([-0.5, -0.6, 5.0, 1.0])
    affine[:3, 3] = [4.0, 3.5, -10.0]
    return Study(frames, affine, np.array(times, dtype=float))  # a copy: TIMES stays intact


def write_enhanced_ct(
    study: Study, path: Path, *, intercepts: tuple[float, ...] = (-1024.0, -1000.0)
) -> Path:
    """``study`` as one Enhanced CT Image Storage file with per-frame functional groups.

    Frames are stored in reverse order and alternate between two rescale intercepts, so
    that the reader must use the per-frame groups for position, time and rescale.
    """
    nx, ny, nz, nt = study.frames.shape
    geo = slice_geometry(study.affine, nz)
    start = _dt.datetime(2024, 3, 1, 10, 0, 0)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = EnhancedCTImageStorage
    ds.SOPClassUID = EnhancedCTImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.Modality, ds.PatientID, ds.SeriesDescription = "CT", "ENH-1", "enhanced CTP"
    ds.InstanceNumber = 1
    ds.Rows, ds.Columns, ds.NumberOfFrames = ny, nx, nz * nt
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    shared = Dataset()
    shared.PlaneOrientationSequence = [Dataset()]
    shared.PlaneOrientationSequence[0].ImageOrientationPatient = geo.orientation
    shared.PixelMeasuresSequence = [Dataset()]
    shared.PixelMeasuresSequence[0].PixelSpacing = geo.spacing
    shared.PixelMeasuresSequence[0].SliceThickness = geo.slice_gap
    ds.SharedFunctionalGroupsSequence = [shared]
    per_frame, pixels = [], []
    order = [(k, s) for k in range(nt) for s in range(nz)][::-1]
    for i, (k, s) in enumerate(order):
        intercept = intercepts[i % len(intercepts)]
        item = Dataset()
        item.PlanePositionSequence = [Dataset()]
        item.PlanePositionSequence[0].ImagePositionPatient = [float(v) for v in geo.positions[s]]
        item.FrameContentSequence = [Dataset()]
        when = start + _dt.timedelta(seconds=float(study.times[k]))
        item.FrameContentSequence[0].FrameAcquisitionDateTime = when.strftime("%Y%m%d%H%M%S.%f")
        item.FrameContentSequence[0].TemporalPositionIndex = k + 1
        item.PixelValueTransformationSequence = [Dataset()]
        pvt = item.PixelValueTransformationSequence[0]
        pvt.RescaleIntercept, pvt.RescaleSlope, pvt.RescaleType = intercept, 1.0, "HU"
        per_frame.append(item)
        pixels.append(np.rint(study.frames[:, :, s, k].T - intercept).astype(np.int16))
    ds.PerFrameFunctionalGroupsSequence = per_frame
    ds.PixelData = np.stack(pixels).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def _write_5d(study: Study, path: Path) -> Path:
    """(x, y, z, 1, t) with the frame interval in pixdim[5], as ISLES 2018 ships CTP."""
    img = nib.Nifti1Image(study.frames[:, :, :, None, :].astype(np.int16), study.affine)
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_zooms((*study.spacing, 1.0, 1.0))
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, path)
    times = [float(t) for t in study.times]
    path.with_name("ctp.json").write_text(json.dumps({"FrameTimes": times}))
    return path


def write_samples(root: Path, *, seed: int = 0, jpeg: bool = True) -> dict[str, Path]:
    """Write `sample_study` under ``root`` in every layout of `SAMPLE_KINDS`.

    JPEG Lossless needs imagecodecs; without it (or with ``jpeg=False``) that kind is left
    out. Returns kind -> the path to read.
    """
    root = Path(root)
    # 96 x 100 int16 images (19 kB) are over the header pass's deferral size: the pixel data
    # are then read from the file after the header pass, as with real CT images
    study = sample_study(nx=96, ny=100, seed=seed)
    out = {
        "dicom": write_dicom_study(study, root / "dicom", uid_seed=f"sample-{seed}"),
        "dicom-rle": write_dicom_study(
            study, root / "dicom-rle", compression="rle", uid_seed=f"rle-{seed}"
        ),
        "dicom-enhanced": write_enhanced_ct(study, root / "dicom-enhanced" / "ctp.dcm").parent,
        "nifti": write_nifti_study(study, root / SAMPLE_KINDS["nifti"]),
        "nifti-5d": _write_5d(study, root / SAMPLE_KINDS["nifti-5d"]),
    }
    if jpeg:
        try:
            out["dicom-jpeg-lossless"] = write_dicom_study(
                study, root / "dicom-jpeg-lossless", compression="jpeg-lossless", uid_seed="j"
            )
        except Exception:  # imagecodecs missing: InputError from the writer
            pass
    return out

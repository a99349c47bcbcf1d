"""A digital reference object (DRO) after Kudo et al. 2013, written apart from the project.

Kudo K et al., "Accuracy and reliability assessment of CT and MR perfusion analysis
software using a digital phantom", Radiology 2013;267:201-211: square tiles of known CBF,
CBV, MTT and delay, one section per CBV (1-5 mL/100 g) and residue shape (box,
exponential, triangular); in each section 7 columns of CBF (CBV x 17.5 down to CBV x 2.5
per min: MTT 3.4, 4, 4.8, 6, 8, 12 and 24 s) and 7 rows of delay (0 to 3 s by 0.5 s). This
is a re-creation from the paper's description, not Kudo's files: the curves come from
`forward_model` (fine grid, then sampled), the AIF is an arterial block of its own, the
frames are written as a DICOM CT series with pydicom (one file per slice and frame, int16
with a rescale, as scanners write them) and the masks as NIfTI with nibabel, so the
project's readers take them as a user's. Nothing here imports `ctpmaps` (a test checks).

Geometry: ``tile`` x ``tile`` pixels of 1 mm a tile, 5 mm sections; the tile grid's
``x`` index is the CBF column, ``y`` the delay row; below the grid a block of artery
(the AIF mask). Baselines: 30 HU of static background, 35 HU in the tiles, 45 HU in the
artery. The brain mask is the tiles.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from forward_model import AIFS, Region, add_noise, simulate
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

#: CBV of each section, mL/100 g.
CBVS = (1.0, 2.0, 3.0, 4.0, 5.0)
#: Residue shapes, one set of sections each.
RESIDUES = ("box", "exponential", "triangular")
#: CBF / CBV of the 7 columns, 1/min (MTT = 60 / this, s).
FLOW_PER_VOLUME = (17.5, 15.0, 12.5, 10.0, 7.5, 5.0, 2.5)
#: Delay of the 7 rows, s.
DELAYS = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
#: Pixel size (mm) and section thickness (mm).
PIXEL_MM, SECTION_MM = 1.0, 5.0
#: Baselines (HU).
BACKGROUND_HU, TISSUE_HU, ARTERY_HU = 30.0, 35.0, 45.0


@dataclass
class DRO:
    """Frames (x, y, z, t) in HU, frame times (s), masks (x, y, z) and each tile's truth.

    ``tile_index`` is -1 outside the tiles, else the row of ``regions`` (and of
    ``section``, the section's index) the voxel belongs to; ``inner`` the tiles' voxels
    at least 2 pixels from their edge (where the values are scored).
    """

    frames: np.ndarray
    times: np.ndarray
    brain: np.ndarray
    aif: np.ndarray
    tile_index: np.ndarray
    inner: np.ndarray
    regions: list[Region]
    section_residue: list[str]
    section_cbv: list[float]

    def truth(self, name: str) -> np.ndarray:
        """Each tile's ``cbf`` (mL/100 g/min), ``cbv`` (mL/100 g), ``mtt`` (s), ``delay``
        (s) or ``tmax`` (s: the delay, as no tile is dispersed)."""
        key = "delay" if name == "tmax" else name
        return np.array([getattr(r, key) for r in self.regions])

    @property
    def tile_residue(self) -> np.ndarray:
        """Each tile's residue shape (``box``, ``exponential``, ``triangular``)."""
        return np.array([r.shape for r in self.regions])

    def tile_medians(self, values: np.ndarray) -> np.ndarray:
        """The median of ``values`` (x, y, z) over each tile's inner voxels."""
        idx = np.where(self.inner, self.tile_index, -1)
        return np.array([np.median(values[idx == i]) for i in range(len(self.regions))])

    @property
    def affine(self) -> np.ndarray:
        """NIfTI (RAS) affine of the grid the DICOM series describes (`write_dicom`):
        x along the rows (DICOM's +x, patient left, is RAS's -x), y down the columns."""
        return np.diag([-PIXEL_MM, -PIXEL_MM, SECTION_MM, 1.0])


def build(
    *,
    residues: tuple[str, ...] = RESIDUES,
    cbvs: tuple[float, ...] = CBVS,
    tile: int = 10,
    frame_s: float = 1.0,
    n_frames: int = 60,
    aif: str = "boxcar",
    arrival: float = 6.0,
    noise: float = 0.0,
    seed: int = 0,
) -> DRO:
    """The DRO: one section per (residue, CBV), 49 tiles each; ``noise`` HU of Gaussian
    noise on every voxel and frame (``seed``)."""
    if aif not in AIFS:
        raise ValueError(f"aif expected one of {sorted(AIFS)}, got {aif!r}")
    times = np.arange(n_frames) * frame_s
    regions, res_of, cbv_of = [], [], []
    for shape in residues:
        for cbv in cbvs:
            res_of.append(shape)
            cbv_of.append(cbv)
            for delay in DELAYS:
                for fpv in FLOW_PER_VOLUME:
                    regions.append(Region(cbv * fpv, 60.0 / fpv, delay, shape))
    curves = simulate(regions, aif=aif, times=times, arrival=arrival)
    nt, nd = len(FLOW_PER_VOLUME), len(DELAYS)
    margin = tile // 2
    nx = nt * tile + 2 * margin
    ny = (nd + 1) * tile + 3 * margin
    nz = len(res_of)
    frames = np.full((nx, ny, nz, times.size), BACKGROUND_HU)
    tile_index = np.full((nx, ny, nz), -1, np.int64)
    inner = np.zeros((nx, ny, nz), bool)
    aif_mask = np.zeros((nx, ny, nz), bool)
    i = 0
    for z in range(nz):
        for row in range(nd):
            for col in range(nt):
                x0, y0 = margin + col * tile, margin + row * tile
                sl = (slice(x0, x0 + tile), slice(y0, y0 + tile), z)
                frames[sl] = TISSUE_HU + curves.tissue[i]
                tile_index[sl] = i
                inner[x0 + 2 : x0 + tile - 2, y0 + 2 : y0 + tile - 2, z] = True
                i += 1
        ya = margin * 2 + nd * tile  # the artery, below the grid
        art = (slice(nx // 2 - tile // 2, nx // 2 + tile // 2), slice(ya, ya + tile), z)
        frames[art] = ARTERY_HU + curves.aif
        aif_mask[art] = True
    if noise:
        frames = add_noise(frames, noise, seed)
    return DRO(
        frames, times, tile_index >= 0, aif_mask, tile_index, inner & (tile_index >= 0),
        regions, res_of, cbv_of,
    )  # fmt: skip


def write_dicom(dro: DRO, folder: Path, *, rescale_slope: float = 1.0) -> list[Path]:
    """One CT image file per section and frame in ``folder``: int16 stored values,
    ``HU = value * rescale_slope - 1024``, times in *AcquisitionTime*, geometry in
    *ImagePositionPatient* / *ImageOrientationPatient* (axial, rows along +x)."""
    folder.mkdir(parents=True, exist_ok=True)
    study, series, frame_of_ref = generate_uid(), generate_uid(), generate_uid()
    start = datetime.datetime(2026, 1, 1, 9, 0, 0)
    nx, ny, nz, nt = dro.frames.shape
    paths = []
    for t in range(nt):
        when = start + datetime.timedelta(seconds=float(dro.times[t]))
        for z in range(nz):
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = CTImageStorage
            meta.MediaStorageSOPInstanceUID = generate_uid()
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds = Dataset()
            ds.file_meta = meta
            ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
            ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
            ds.FrameOfReferenceUID = frame_of_ref
            ds.Modality, ds.ImageType = "CT", ["ORIGINAL", "PRIMARY", "AXIAL"]
            ds.PatientName, ds.PatientID = "DRO^Kudo", "DRO-KUDO"
            ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = when.strftime("%Y%m%d")
            ds.AcquisitionTime = when.strftime("%H%M%S.%f")
            ds.SeriesNumber, ds.InstanceNumber = 1, t * nz + z + 1
            ds.Rows, ds.Columns = ny, nx
            ds.PixelSpacing = [PIXEL_MM, PIXEL_MM]
            ds.SliceThickness = SECTION_MM
            ds.ImagePositionPatient = [0.0, 0.0, z * SECTION_MM]
            ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
            ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024.0, rescale_slope, "HU"
            ds.KVP = 80
            hu = dro.frames[:, :, z, t].T  # (rows = y, columns = x)
            stored = np.round((hu + 1024.0) / rescale_slope)
            ds.PixelData = np.clip(stored, -32768, 32767).astype("<i2").tobytes()
            path = folder / f"IM_{t:03d}_{z:02d}.dcm"
            pydicom.dcmwrite(path, ds, enforce_file_format=True)
            paths.append(path)
    return paths


def write_mask(dro: DRO, mask: np.ndarray, path: Path) -> Path:
    """``mask`` (x, y, z) as a uint8 NIfTI on the DICOM series' grid."""
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), dro.affine), path)
    return path

"""The CT images that the DICOM exports reference, one per slice of the study.

- a study read from classic single-frame DICOM is referenced directly: the first image in
  time of each slice, whose header the reader kept (``Study.source_images``);
- any other study (NIfTI, phantom, UniToBrain folder, enhanced multi-frame DICOM) gets a
  *reference CT series* synthesised in memory, one image per slice with the unenhanced image
  as pixels and the study's geometry; it is written beside the maps (``CT_reference/``) so
  that the references resolve in PACS. Patient and study identifiers come from the study's
  metadata when present; otherwise the study and frame of reference UIDs are derived from
  the frames' content, so repeated runs on one study land in one PACS study.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset

from ..study import Study
from .attributes import DEFAULT_START, SeriesOptions, base_dataset, new_instance, place_slice
from .geometry import SliceGeometry, slice_geometry
from .uids import content_seed, new_uid

__all__ = ["ReferenceSeries", "reference_series"]

log = logging.getLogger(__name__)


@dataclass
class ReferenceSeries:
    """The CT images the exports reference, one per slice in the study's slice order.

    Attributes
    ----------
    datasets : list of pydicom Dataset
        One per slice ``k`` of the study (``datasets[k]`` lies at slice ``k``).
    synthetic : bool
        True when made here (to be written beside the exports), False when read from the
        study's own DICOM files.
    geometry : SliceGeometry
        Slice geometry from the study's affine (LPS).
    note : str
        Why the series was synthesised, when it was.
    """

    datasets: list[Dataset]
    synthetic: bool
    geometry: SliceGeometry
    note: str = ""

    @property
    def study_uid(self) -> str:
        return str(self.datasets[0].StudyInstanceUID)

    @property
    def frame_of_reference_uid(self) -> str:
        return str(self.datasets[0].FrameOfReferenceUID)


def _synthetic_series(study: Study, image: np.ndarray, note: str) -> ReferenceSeries:
    """One CT image per slice with the study's geometry and the unenhanced image as pixels."""
    meta = study.metadata
    seed = content_seed(study)
    geo = slice_geometry(study.affine, study.shape[2])
    patient_id = str(meta.get("patient_id") or "CTPMAPS-0001")
    opts = SeriesOptions(
        patient_id=patient_id,
        patient_name=f"{patient_id}^",  # one family-name component, said explicitly
        study_description="CT perfusion",
        series_description="CTP unenhanced reference (ctpmaps)",
        series_number=99,
        image_type=("DERIVED", "SECONDARY", "AXIAL"),
        kvp=meta.get("kvp"),
        exposure_mas=meta.get("exposure_mas"),
        manufacturer=str(meta.get("manufacturer") or "ctpmaps"),
        start=DEFAULT_START,
    )
    uids = {
        "study": str(meta.get("study_instance_uid") or new_uid(seed, "study")),
        "frame_of_reference": str(meta.get("frame_of_reference_uid") or new_uid(seed, "for")),
        "series": new_uid(seed, "reference-series"),
    }
    base = base_dataset(study.frames.shape, geo, uids, opts)
    stored = np.clip(np.rint(image - opts.rescale_intercept), -32768, 32767).astype(np.int16)
    out = []
    for k in range(study.shape[2]):
        ds = new_instance(base, new_uid(seed, "reference-image", k))
        place_slice(ds, geo, k, k + 1)
        ds.ContentDate, ds.ContentTime = (
            opts.start.strftime("%Y%m%d"),
            opts.start.strftime("%H%M%S"),
        )
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).tobytes()
        ds["PixelData"].VR = "OW"
        out.append(ds)
    return ReferenceSeries(out, True, geo, note)


def _source_series(study: Study, geo: SliceGeometry) -> tuple[list[Dataset] | None, str]:
    """The study's own first image of each slice (kept at load time), or None and why not."""
    source = study.source_images
    if source is None:
        return None, f"study source is {study.source!r}"
    if source.multiframe:
        return None, "enhanced multi-frame source: references go to a synthesised series"
    headers = list(source.headers)
    if len(headers) != study.shape[2]:
        return None, f"{len(headers)} source slices for {study.shape[2]} slices of the maps"
    normal = np.cross(np.asarray(geo.orientation[:3]), np.asarray(geo.orientation[3:]))
    for k, ds in enumerate(headers):
        position = np.asarray(ds.ImagePositionPatient, dtype=np.float64)
        if abs(float(position @ normal) - geo.locations[k]) >= 0.25 * max(geo.slice_gap, 1e-3):
            return None, f"no source image at slice {k} ({geo.locations[k]:.2f} mm)"
        if (int(ds.Columns), int(ds.Rows)) != study.shape[:2]:
            return None, f"source images of {ds.Columns} x {ds.Rows} pixels, maps {study.shape[:2]}"
    return headers, ""


def reference_series(study: Study, *, image: np.ndarray | None = None) -> ReferenceSeries:
    """The CT images that exports of ``study`` reference (see the module docstring).

    Parameters
    ----------
    study : Study
        The study the maps were computed from.
    image : ndarray, shape (x, y, z), optional
        Pixels of a synthesised series in HU; default the mean of the first three frames.

    Returns
    -------
    ReferenceSeries
    """
    geo = slice_geometry(study.affine, study.shape[2])
    datasets, note = _source_series(study, geo)
    if datasets is not None:
        return ReferenceSeries(datasets, False, geo)
    if study.source_images is not None:
        log.warning("DICOM export: %s", note)
    if image is None:
        image = study.frames[..., : min(3, study.n_frames)].mean(axis=-1)
    return _synthetic_series(study, np.asarray(image, np.float32), note)

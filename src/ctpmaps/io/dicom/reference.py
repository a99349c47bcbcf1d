"""The CT images that the DICOM exports reference, one per slice of the study.

- a study read from classic single-frame DICOM is referenced directly: the first image in
  time of each slice, whose header the reader kept (``Study.source_images``);
- any other study (NIfTI, phantom, UniToBrain folder, enhanced multi-frame DICOM) gets a
  *reference CT series* synthesised in memory, one image per slice with the unenhanced image
  as pixels and the study's geometry; it is written beside the maps (``CT_reference/``) so
  that the references resolve in PACS. Patient, study and frame of reference come from the
  source images when there are any (an enhanced multi-frame source), else from the study's
  metadata; otherwise the study and frame of reference UIDs are derived from the frames'
  content, so repeated runs on one study land in one PACS study.

With ``anonymize`` the patient and study attributes and the source UIDs are replaced
(`privacy`): the datasets referenced are de-identified copies of the source headers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset

from ..study import Study
from .attributes import DEFAULT_START, SeriesOptions, base_dataset, new_instance, place_slice
from .derived import Identity, identity_of, source_mismatch
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
    identity : Identity
        Patient, study and frame of reference of the exports (`derived.identity_of`).
    note : str
        Why the series was synthesised, when it was.
    """

    datasets: list[Dataset]
    synthetic: bool
    geometry: SliceGeometry
    identity: Identity
    note: str = ""

    @property
    def study_uid(self) -> str:
        return str(self.datasets[0].StudyInstanceUID)

    @property
    def frame_of_reference_uid(self) -> str:
        return str(self.datasets[0].FrameOfReferenceUID)


def _synthetic_series(
    study: Study, image: np.ndarray, identity: Identity, seed: str, note: str
) -> ReferenceSeries:
    """One CT image per slice with the study's geometry and the unenhanced image as pixels."""
    meta = study.metadata
    geo = slice_geometry(study.affine, study.shape[2])
    opts = SeriesOptions(
        study_description="CT perfusion",
        series_description="CTP unenhanced reference (ctpmaps)",
        series_number=99,
        image_type=("DERIVED", "SECONDARY", "AXIAL"),
        kvp=meta.get("kvp"),
        exposure_mas=meta.get("exposure_mas"),
        manufacturer=str(meta.get("manufacturer") or "ctpmaps"),
        start=DEFAULT_START,
    )
    series_uid = new_uid(seed, "reference-series")
    base = base_dataset(study.frames.shape, geo, series_uid, opts, identity)
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
    return ReferenceSeries(out, True, geo, identity, note)


def reference_series(
    study: Study, *, image: np.ndarray | None = None, anonymize: bool = False
) -> ReferenceSeries:
    """The CT images that exports of ``study`` reference (see the module docstring).

    Parameters
    ----------
    study : Study
        The study the maps were computed from.
    image : ndarray, shape (x, y, z), optional
        Pixels of a synthesised series in HU; default the mean of the first three frames.
    anonymize : bool
        Reference de-identified copies (`privacy`).

    Returns
    -------
    ReferenceSeries
    """
    geo = slice_geometry(study.affine, study.shape[2])
    seed = content_seed(study)
    names = {"study": "study", "frame-of-reference": "for"}  # parts of the seeded UIDs
    own_name = None
    if study.source_images is None:  # a family-name component, said explicitly
        own_name = f"{study.metadata.get('patient_id') or 'CTPMAPS-0001'}^"
    identity = identity_of(
        study,
        anonymize=anonymize,
        new=lambda part: new_uid(seed, names[part]),
        patient_name=own_name,
    )
    note = source_mismatch(study, geo)
    if not note:
        headers = [identity.header(ds) for ds in study.source_images.headers]
        return ReferenceSeries(headers, False, geo, identity)
    if study.source_images is not None:
        log.warning("DICOM export: %s; references go to a synthesised series", note)
    if image is None:
        image = study.frames[..., : min(3, study.n_frames)].mean(axis=-1)
    return _synthetic_series(study, np.asarray(image, np.float32), identity, seed, note)

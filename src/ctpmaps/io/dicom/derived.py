"""Derived objects keep their source: patient, study, frame of reference and references.

Everything ctpmaps writes from a study read from DICOM (preprocessed CT frames, the
reference CT series, Parametric Maps, SEG) carries the source's patient and study
attributes (`privacy.IDENTITY_KEYWORDS`), its *StudyInstanceUID* and *FrameOfReferenceUID*,
new series and instance UIDs, and references to the source images. With ``anonymize`` the
identity is replaced as `privacy` describes.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset

from ..study import Study
from .geometry import SliceGeometry, normal_of
from .privacy import (
    CITED_KEYWORDS,
    IDENTITY_KEYWORDS,
    ROOT_UIDS,
    deidentified,
    pseudonymous_uid,
)
from .source import ImageRef, SourceImages
from .times import date_time, dt_seconds

__all__ = ["Identity", "identity_of", "source_start", "source_mismatch", "source_image_item"]


@dataclass(frozen=True)
class Identity:
    """Whose and which study's objects are written.

    Attributes
    ----------
    attributes : Dataset
        Patient and study attributes put on every object written (de-identified when
        ``anonymized``).
    study_uid, frame_of_reference_uid : str
        *StudyInstanceUID* and *FrameOfReferenceUID* written.
    anonymized : bool
        Source UIDs are replaced (`privacy.pseudonymous_uid`) wherever they are cited.
    """

    attributes: Dataset
    study_uid: str
    frame_of_reference_uid: str
    anonymized: bool = False

    def stamp(self, ds: Dataset) -> None:
        """Put the identity, study and frame of reference UIDs on ``ds`` (overwriting)."""
        for elem in self.attributes:
            ds[elem.tag] = elem
        ds.StudyInstanceUID = self.study_uid
        ds.FrameOfReferenceUID = self.frame_of_reference_uid

    def cite(self, uid: str) -> str:
        """How a source UID is cited in the objects written."""
        return pseudonymous_uid(uid) if self.anonymized else uid

    def header(self, ds: Dataset) -> Dataset:
        """A source header as the objects written may cite it (copied, never changed).

        Anonymized: reduced to `privacy.CITED_KEYWORDS`, its root UIDs mapped and the
        de-identified patient and study attributes put on it.
        """
        if not self.anonymized:
            return ds
        out = Dataset()
        for keyword in CITED_KEYWORDS:
            if keyword in ds:
                out[ds.data_element(keyword).tag] = ds.data_element(keyword)
        for keyword in ROOT_UIDS:
            if keyword in ds:
                setattr(out, keyword, self.cite(str(ds[keyword].value)))
        if hasattr(ds, "file_meta"):
            out.file_meta = Dataset({tag: elem for tag, elem in ds.file_meta.items()})
            if "MediaStorageSOPInstanceUID" in ds.file_meta:
                out.file_meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID
        self.stamp(out)
        return out


def _copied(source: SourceImages) -> Dataset:
    """The source's patient and study attributes; unreadable values are left out."""
    attrs = Dataset()
    header = source.identity
    for keyword in IDENTITY_KEYWORDS:
        if keyword in header:
            try:
                elem = header[keyword]
                str(elem.value)  # converts: a malformed value raises here, not when written
            except Exception:  # pydicom raises many kinds on malformed values
                continue
            attrs[elem.tag] = elem
    return attrs


def identity_of(
    study: Study | None,
    *,
    anonymize: bool,
    new: Callable[[str], str],
    patient_id: str | None = None,
    patient_name: str | None = None,
    study_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
) -> Identity:
    """The identity of the objects derived from ``study``.

    Parameters
    ----------
    study : Study or None
        With ``source_images`` its patient and study attributes are copied; otherwise its
        metadata give ``patient_id``, ``study_instance_uid`` and ``frame_of_reference_uid``.
    anonymize : bool
        Replace the identity (`privacy`); explicit ``patient_id``/``patient_name`` ignored.
    new : callable
        ``new("study")`` or ``new("frame-of-reference")``: a UID where none is known.
    patient_id, patient_name, study_uid, frame_of_reference_uid : str or None
        Explicit values, taking precedence over the source's.
    """
    source = study.source_images if study is not None else None
    meta = study.metadata if study is not None else {}
    attrs = _copied(source) if source is not None else Dataset()
    study_uid = (
        study_uid
        or (source.study_instance_uid if source is not None else "")
        or str(meta.get("study_instance_uid") or "")
        or new("study")
    )
    for_uid = (
        frame_of_reference_uid
        or (source.frame_of_reference_uid if source is not None else "")
        or str(meta.get("frame_of_reference_uid") or "")
        or new("frame-of-reference")
    )
    if anonymize:
        return Identity(
            deidentified(study_uid), pseudonymous_uid(study_uid), pseudonymous_uid(for_uid), True
        )
    pid = patient_id or str(attrs.get("PatientID") or meta.get("patient_id") or "CTPMAPS-0001")
    attrs.PatientID = pid
    # The patient ID stands in for a missing name as a family name alone ("ID^"): a bare
    # single component is ambiguous in DICOM PN and highdicom warns about it.
    attrs.PatientName = patient_name or str(attrs.get("PatientName") or "") or f"{pid}^"
    return Identity(attrs, study_uid, for_uid, False)


def source_start(source: SourceImages | None) -> _dt.datetime | None:
    """Date and time of the source's first image (from its kept headers), if dated."""
    if source is None:
        return None
    seconds = []
    for ds in source.headers:
        value = dt_seconds(ds.get("AcquisitionDateTime"))
        if value is None:
            value, dated = date_time(ds.get("AcquisitionDate"), ds.get("AcquisitionTime"))
            if not dated:
                value, dated = date_time(ds.get("ContentDate"), ds.get("ContentTime"))
            value = value if dated else None
        if value is None:
            return None
        seconds.append(value)
    return _dt.datetime(2000, 1, 1) + _dt.timedelta(seconds=min(seconds))


def source_mismatch(study: Study, geo: SliceGeometry) -> str:
    """Why the study's slices are not its source images' slices ("" when they are)."""
    source = study.source_images
    if source is None:
        return f"study source is {study.source!r}"
    if source.multiframe:
        return "enhanced multi-frame source"
    if len(source.headers) != study.shape[2]:
        return f"{len(source.headers)} source slices for {study.shape[2]} slices"
    normal = normal_of(np.asarray(geo.orientation))
    for k, ds in enumerate(source.headers):
        position = np.asarray(ds.ImagePositionPatient, dtype=np.float64)
        if not abs(float(position @ normal) - geo.locations[k]) < 0.25 * max(geo.slice_gap, 1e-3):
            return f"no source image at slice {k} ({geo.locations[k]:.2f} mm)"
        if (int(ds.Columns), int(ds.Rows)) != study.shape[:2]:
            return f"source images of {ds.Columns} x {ds.Rows} pixels, study {study.shape[:2]}"
    return ""


def source_image_item(ref: ImageRef, identity: Identity) -> Dataset:
    """One item of a *Source Image Sequence* citing ``ref``."""
    item = Dataset()
    item.ReferencedSOPClassUID = ref.sop_class_uid
    item.ReferencedSOPInstanceUID = identity.cite(ref.sop_instance_uid)
    if ref.frame is not None:
        item.ReferencedFrameNumber = ref.frame
    return item

"""What a study read from DICOM keeps of its source images, for the outputs derived from it.

Derived DICOM (preprocessed frames, Parametric Maps, SEG) must carry the source's patient,
study and frame of reference and reference the source images. The reader keeps here, at
load time, the pixel-less header of the first image in time at each slice and the UIDs of
every image, so that no writer reads a source header again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset

__all__ = ["SourceImages", "ImageRef", "pixel_less", "kept_header"]

#: Elements that hold pixels (or large per-pixel data) and are not kept.
_PIXEL_TAGS = frozenset(
    {
        0x7FE00008,  # FloatPixelData
        0x7FE00009,  # DoubleFloatPixelData
        0x7FE00010,  # PixelData
        0x7FE00001,  # ExtendedOffsetTable
        0x7FE00002,  # ExtendedOffsetTableLengths
    }
)


@dataclass(frozen=True)
class ImageRef:
    """One source image (or one frame of a multi-frame source image)."""

    sop_class_uid: str
    sop_instance_uid: str
    frame: int | None = None  # frame number (from 1) in a multi-frame image


@dataclass(frozen=True, eq=False)
class SourceImages:
    """The DICOM images a `Study` was read from.

    Attributes
    ----------
    headers : tuple of pydicom Dataset
        Pixel-less headers, one per slice of the study (``headers[k]`` is the first image in
        time at slice ``k``, in the study's ascending slice order); for an enhanced
        multi-frame source, the one file's header.
    images : tuple of tuple of ImageRef
        ``images[k][t]``: the image of slice ``k`` and frame ``t`` (study order).
    multiframe : bool
        True when the source is one enhanced multi-frame file.
    """

    headers: tuple[Dataset, ...]
    images: tuple[tuple[ImageRef, ...], ...]
    multiframe: bool = False

    @property
    def identity(self) -> Dataset:
        """The header whose patient, study and frame of reference the derived outputs carry."""
        return self.headers[0]

    @property
    def study_instance_uid(self) -> str:
        return str(self.identity.get("StudyInstanceUID", ""))

    @property
    def series_instance_uid(self) -> str:
        return str(self.identity.get("SeriesInstanceUID", ""))

    @property
    def frame_of_reference_uid(self) -> str:
        return str(self.identity.get("FrameOfReferenceUID", ""))

    @property
    def files(self) -> list[Path]:
        """The files of the kept headers."""
        return [Path(ds.filename) for ds in self.headers if getattr(ds, "filename", None)]


def pixel_less(ds: Dataset) -> Dataset:
    """A shallow copy of ``ds`` without its pixel data (file meta and file name kept)."""
    out = Dataset({tag: elem for tag, elem in ds.items() if tag not in _PIXEL_TAGS})
    if hasattr(ds, "file_meta"):
        out.file_meta = ds.file_meta
    out.filename = getattr(ds, "filename", None)
    return out


def _readable(ds: Dataset) -> list[str]:
    """Keywords (or tags) of the elements of ``ds`` whose values do not convert, dropped."""
    bad = []
    for tag in list(ds.keys()):
        try:
            elem = ds[tag]
            if elem.VR == "SQ":
                for item in elem.value:
                    if _readable(item):
                        raise ValueError("an item holds an unreadable value")
        except Exception:  # pydicom raises many kinds on malformed values
            bad.append(str(tag))
            del ds[tag]
    return bad


def kept_header(ds: Dataset, path: Path, problems: list[str]) -> Dataset:
    """The pixel-less copy of ``ds`` a study keeps: every value converted now, so that a
    malformed one met later (by a writer, by highdicom) cannot fail an output; elements
    that do not convert are dropped and said in ``problems``."""
    out = pixel_less(ds)
    bad = _readable(out)
    if bad:
        problems.append(
            f"{path.name}: unreadable header values left out of the derived outputs: "
            + ", ".join(bad[:5])
        )
    return out

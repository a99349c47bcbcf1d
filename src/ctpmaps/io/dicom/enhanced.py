"""Enhanced multi-frame CT: one `Image` per frame, from the per-frame functional groups."""

from __future__ import annotations

from pathlib import Path

from pydicom.dataset import Dataset

from ...errors import InputError
from .image import Image, placement, rescale_of
from .times import dt_seconds
from .values import integer, sequence, tag_name, text

__all__ = ["enhanced_images"]


def _group(frame: Dataset | None, shared: Dataset | None, name: str, path: Path) -> Dataset:
    """Functional group ``name`` of one frame: per-frame first, then shared; empty if none."""
    for groups in (frame, shared):
        if groups is not None:
            items = sequence(groups, name, path)
            if items:
                return items[0]
    return Dataset()


def enhanced_images(path: Path, ds: Dataset) -> list[Image]:
    """One `Image` per frame of an enhanced multi-frame CT file, checked.

    Raises
    ------
    InputError
        *NumberOfFrames* and the per-frame groups disagree, or a frame's position,
        orientation, spacing or rescale is missing or malformed (naming the frame and tag).
    """
    n = integer(ds, "NumberOfFrames", path, default=1, low=1, high=1_000_000)
    per_frame = sequence(ds, "PerFrameFunctionalGroupsSequence", path)
    if len(per_frame) != n:
        raise InputError(
            path,
            f"{tag_name('NumberOfFrames')} is {n} but there are {len(per_frame)} per-frame "
            "functional groups",
        )
    shared_items = sequence(ds, "SharedFunctionalGroupsSequence", path)
    shared = shared_items[0] if shared_items else None
    size = (int(ds.Rows), int(ds.Columns))
    instance = integer(ds, "InstanceNumber", path)
    images = []
    for i, groups in enumerate(per_frame):
        plane = _group(groups, shared, "PlanePositionSequence", path)
        orient = _group(groups, shared, "PlaneOrientationSequence", path)
        measures = _group(groups, shared, "PixelMeasuresSequence", path)
        content = _group(groups, shared, "FrameContentSequence", path)
        pvt = _group(groups, shared, "PixelValueTransformationSequence", path)
        try:
            position, orientation, spacing = placement(path, plane, orient, measures)
            slope, intercept = rescale_of(path, pvt, default=ds)
            temporal = integer(content, "TemporalPositionIndex", path)
        except InputError as exc:
            raise InputError(path, f"frame {i + 1}: {exc.problem} (functional groups)") from None
        images.append(
            Image(
                path=path,
                frame=i,
                position=position,
                orientation=orientation,
                spacing=spacing,
                size=size,
                times={
                    "acquisition": dt_seconds(text(content, "FrameAcquisitionDateTime", path)),
                    "content": dt_seconds(text(content, "FrameReferenceDateTime", path)),
                    "trigger": None,
                },
                dated=True,
                instance=instance,
                temporal_index=temporal,
                header=ds,
                slope=slope,
                intercept=intercept,
            )
        )
    return images

"""DICOM outputs for PACS: perfusion maps as Parametric Map objects, lesions as DICOM SEG.

Both reference the CT series they were computed from (`reference.reference_series`): same
patient, study and frame of reference, with the source images of each slice listed. The
maps' geometry is the study's (plane positions, orientation and pixel spacing from its
affine, converted to LPS).

Parametric maps store unsigned 16-bit values with a Real World Value Mapping
``value = 0.01 * stored`` (0 to 655.35 in the map's unit: the UniToBrain convention, read
by every viewer that reads PM); values outside the brain (NaN) and below 0 are stored as 0.
Units are UCUM codes: ``mL/(100.g.min)`` for CBF, ``mL/(100.g)`` for CBV, ``s`` for times.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.uid import ExplicitVRLittleEndian

from ... import __version__
from ...errors import InputError
from ...physics import MAP_UNITS
from ..atomic import atomic_dir
from ..study import Study
from .geometry import SliceGeometry
from .reference import ReferenceSeries, reference_series
from .uids import new_uid

__all__ = [
    "MAP_CODES",
    "SEGMENT_CODES",
    "PM_SLOPE",
    "parametric_map",
    "lesion_segmentation",
    "export_dicom",
]

log = logging.getLogger(__name__)

#: Stored-to-physical slope of the parametric maps (value = slope * stored).
PM_SLOPE = 0.01


def _code(value: str, scheme: str, meaning: str):
    import highdicom as hd

    return hd.sr.CodedConcept(value=value, scheme_designator=scheme, meaning=meaning)


#: UCUM code and meaning of each physical unit of `ctpmaps.physics.MAP_UNITS`.
_UCUM = {
    "mL/100 g/min": ("mL/(100.g.min)", "milliliter per 100 gram per minute"),
    "mL/100 g": ("mL/(100.g)", "milliliter per 100 gram"),
    "s": ("s", "second"),
}


def _map_code(name: str, code: str, meaning: str, label: str, window: tuple[float, float]):
    return {
        "quantity": ("DCM", code, meaning),
        "unit": ("UCUM", *_UCUM[MAP_UNITS[name]]),
        "label": label,
        "window": window,
    }


#: Per map: quantity code (scheme, value, meaning), UCUM unit (scheme, value, meaning), label,
#: display window in the map's unit.
MAP_CODES: dict[str, dict[str, Any]] = {
    name: _map_code(name, *row)
    for name, row in {
        "cbf": ("113055", "Regional Cerebral Blood Flow", "CBF", (0.0, 80.0)),
        "cbv": ("113056", "Regional Cerebral Blood Volume", "CBV", (0.0, 6.0)),
        "mtt": ("113052", "Mean Transit Time", "MTT", (0.0, 15.0)),
        "ttp": ("113069", "Time To Peak", "TTP", (0.0, 30.0)),
        "tmax": ("113084", "Tmax", "Tmax", (0.0, 12.0)),
        "delay": ("126371", "Bolus Arrival Time", "Delay", (0.0, 12.0)),
    }.items()
}

#: Segments of the lesion SEG: label, category and type (scheme, value, meaning), RGB colour.
SEGMENT_CODES: dict[str, dict[str, Any]] = {
    "core": {
        "label": "Ischaemic core",
        "category": ("SCT", "49755003", "Morphologically Altered Structure"),
        "type": ("SCT", "55641003", "Infarct"),
        "rgb": (220, 30, 30),
    },
    "penumbra": {
        "label": "Penumbra",
        "category": ("SCT", "49755003", "Morphologically Altered Structure"),
        "type": ("SCT", "52674009", "Ischemia"),
        "rgb": (40, 200, 60),
    },
}


def _geometry_sequences(geo: SliceGeometry):
    import highdicom as hd

    measures = hd.PixelMeasuresSequence(
        pixel_spacing=[float(v) for v in geo.spacing],
        slice_thickness=float(geo.slice_gap),
        spacing_between_slices=float(geo.slice_gap),
    )
    orientation = hd.PlaneOrientationSequence("PATIENT", [float(v) for v in geo.orientation])
    positions = [hd.PlanePositionSequence("PATIENT", [float(v) for v in p]) for p in geo.positions]
    return measures, orientation, positions


def _equipment() -> dict[str, Any]:
    return {
        "manufacturer": "ctpmaps",
        "manufacturer_model_name": "ctpmaps",
        "software_versions": __version__,
        "device_serial_number": "0",
    }


def parametric_map(
    values: np.ndarray,
    name: str,
    reference: ReferenceSeries,
    *,
    series_number: int = 100,
    method: str = "",
    series_uid: str | None = None,
):
    """One perfusion map as a highdicom `ParametricMap` referencing ``reference``.

    Parameters
    ----------
    values : ndarray, shape (x, y, z)
        The map in its physical unit (`MAP_CODES`); NaN outside the brain.
    name : str
        One of `MAP_CODES` (``"cbf"``, ``"cbv"``, ``"mtt"``, ``"ttp"``, ``"tmax"``, ``"delay"``).
    reference : ReferenceSeries
        Source images (`reference_series`).
    series_number : int
        *SeriesNumber* of the new series.
    method : str
        How the map was made, for the series description.
    series_uid : str, optional
        *SeriesInstanceUID*; a new one by default.

    Returns
    -------
    highdicom.pm.ParametricMap
    """
    import highdicom as hd

    if name not in MAP_CODES:
        raise InputError("name", f"expected one of {sorted(MAP_CODES)}, got {name!r}")
    values = np.asarray(values, np.float32)
    n_slices = len(reference.datasets)
    if values.ndim != 3 or values.shape[2] != n_slices:
        raise InputError(name, f"expected shape (x, y, {n_slices}), got {values.shape}")
    info = MAP_CODES[name]
    top = np.iinfo(np.uint16).max
    stored = np.clip(np.rint(np.nan_to_num(values, nan=0.0) / PM_SLOPE), 0, top).astype(np.uint16)
    pixels = np.ascontiguousarray(stored.transpose(2, 1, 0))  # (slice, rows=y, columns=x)
    scheme, unit_value, unit_meaning = info["unit"]
    mapping = hd.pm.RealWorldValueMapping(
        lut_label=info["label"],
        lut_explanation=f"{info['label']} in {unit_value}",
        unit=_code(unit_value, scheme, unit_meaning),
        value_range=(0, int(top)),
        slope=PM_SLOPE,
        intercept=0.0,
        quantity_definition=_code(*(info["quantity"][1], info["quantity"][0], info["quantity"][2])),
    )
    measures, orientation, positions = _geometry_sequences(reference.geometry)
    lo, hi = info["window"]
    pm = hd.pm.ParametricMap(
        source_images=reference.datasets,
        pixel_array=pixels,
        series_instance_uid=series_uid or new_uid(None),
        series_number=int(series_number),
        sop_instance_uid=new_uid(None),
        instance_number=1,
        contains_recognizable_visual_features=False,
        real_world_value_mappings=[mapping],
        voi_lut_transformations=[
            hd.VOILUTTransformation(
                window_center=(lo + hi) / 2 / PM_SLOPE,
                window_width=(hi - lo) / PM_SLOPE,
                window_explanation=f"{info['label']} {lo:g}-{hi:g} {unit_value}",
            )
        ],
        content_label=info["label"].upper()[:16],
        content_description=f"{info['label']} ({method or 'ctpmaps'})"[:64],
        pixel_measures=measures,
        plane_orientation=orientation,
        plane_positions=positions,
        **_equipment(),
    )
    pm.SeriesDescription = f"{info['label']} [{unit_value}] ctpmaps {method}".strip()[:64]
    return pm


def lesion_segmentation(
    masks: Mapping[str, np.ndarray],
    reference: ReferenceSeries,
    *,
    series_number: int = 110,
    description: str = "",
):
    """Core and penumbra as a binary DICOM SEG (highdicom `Segmentation`).

    Parameters
    ----------
    masks : mapping of str to ndarray (x, y, z) bool
        ``"core"`` and ``"penumbra"`` (others in `SEGMENT_CODES` too); segments are
        numbered in `SEGMENT_CODES` order.
    reference : ReferenceSeries
        Source images (`reference_series`).
    series_number : int
        *SeriesNumber* of the new series.
    description : str
        How the lesions were defined (content description, 64 characters at most).

    Returns
    -------
    highdicom.seg.Segmentation
    """
    import highdicom as hd

    names = [n for n in SEGMENT_CODES if n in masks]
    if not names:
        raise InputError("masks", f"expected some of {sorted(SEGMENT_CODES)}, got {sorted(masks)}")
    n_slices = len(reference.datasets)
    stack = []
    for n in names:
        m = np.asarray(masks[n], bool)
        if m.ndim != 3 or m.shape[2] != n_slices:
            raise InputError(n, f"expected shape (x, y, {n_slices}), got {m.shape}")
        stack.append(m.transpose(2, 1, 0))
    pixels = np.stack(stack, axis=-1).astype(np.uint8)  # (slice, rows, columns, segment)
    algorithm = hd.AlgorithmIdentificationSequence(
        name="ctpmaps lesion thresholds",
        family=_code("123105", "DCM", "Histogram Analysis"),  # CID 7162: thresholds
        version=__version__,
    )
    descriptions = []
    for number, n in enumerate(names, start=1):
        info = SEGMENT_CODES[n]
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=info["label"],
                segmented_property_category=_code(*_swap(info["category"])),
                segmented_property_type=_code(*_swap(info["type"])),
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                algorithm_identification=algorithm,
                display_color=hd.color.CIELabColor.from_rgb(*info["rgb"]),
            )
        )
    measures, orientation, positions = _geometry_sequences(reference.geometry)
    seg = hd.seg.Segmentation(
        source_images=reference.datasets,
        pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=new_uid(None),
        series_number=int(series_number),
        sop_instance_uid=new_uid(None),
        instance_number=1,
        content_description=(description or "core and penumbra")[:64],
        pixel_measures=measures,
        plane_orientation=orientation,
        plane_positions=positions,
        omit_empty_frames=False,
        **_equipment(),
    )
    seg.SeriesDescription = "Lesions: core, penumbra (ctpmaps)"
    return seg


def _swap(code: tuple[str, str, str]) -> tuple[str, str, str]:
    """(scheme, value, meaning) -> (value, scheme, meaning), the order of `_code`."""
    return code[1], code[0], code[2]


def export_dicom(
    maps: Mapping[str, np.ndarray] | Any,
    masks: Mapping[str, np.ndarray],
    study: Study,
    out_dir: str | Path,
    *,
    method: str = "",
    lesion_description: str = "",
    image: np.ndarray | None = None,
    anonymize: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write every map as a Parametric Map, the lesions as SEG, and, when synthesised, the
    reference CT series, into ``out_dir`` (all or nothing).

    Parameters
    ----------
    maps : PerfusionMaps or mapping of str to ndarray (x, y, z)
        Maps in the units of `MAP_CODES`; names not in `MAP_CODES` are skipped.
    masks : mapping of str to ndarray (x, y, z) bool
        ``"core"`` and ``"penumbra"``.
    study : Study
        The study the maps were computed from (geometry, identifiers, source files).
    out_dir : str or Path
        Folder to create: ``PM_<MAP>.dcm`` per map, ``SEG_lesions.dcm`` and
        ``CT_reference/IM000NN.dcm`` when the references are synthesised.
    method : str
        How the maps were made (series descriptions).
    lesion_description : str
        How the lesions were defined.
    image : ndarray (x, y, z), optional
        Pixels of a synthesised reference series (default the mean of the first frames).
    anonymize : bool
        Write no patient identifiers: patient and study attributes and source UIDs are
        replaced as `ctpmaps.io.dicom.privacy` describes; the objects reference the source
        images under their replaced UIDs.
    overwrite : bool
        Replace an existing ``out_dir``.

    Returns
    -------
    dict
        ``files`` (name -> path), ``study_uid``, ``frame_of_reference_uid`` (as written),
        ``reference_synthetic``, ``anonymized``, ``note`` and ``created``.
    """
    out_dir = Path(out_dir)
    values = maps.as_dict() if hasattr(maps, "as_dict") else dict(maps)
    for name, arr in values.items():
        if np.shape(arr) != study.shape:
            raise InputError(
                name, f"expected shape {study.shape} like the study, got {np.shape(arr)}"
            )
    reference = reference_series(study, image=image, anonymize=anonymize)
    files: dict[str, Path] = {}
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        for number, (name, arr) in enumerate(values.items()):
            if name not in MAP_CODES:
                continue
            pm = parametric_map(arr, name, reference, series_number=100 + number, method=method)
            path = tmp / f"PM_{name.upper()}.dcm"
            pm.save_as(path, enforce_file_format=True)
            files[f"pm_{name}"] = out_dir / path.name
        seg = lesion_segmentation(masks, reference, description=lesion_description)
        seg.save_as(tmp / "SEG_lesions.dcm", enforce_file_format=True)
        files["seg"] = out_dir / "SEG_lesions.dcm"
        if reference.synthetic:
            (tmp / "CT_reference").mkdir()
            for k, ds in enumerate(reference.datasets):
                ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
                ds.save_as(tmp / "CT_reference" / f"IM{k + 1:05d}.dcm", enforce_file_format=True)
            files["ct_reference"] = out_dir / "CT_reference"
    log.info("DICOM export: %d objects in %s", len(files), out_dir)
    return {
        "files": files,
        "study_uid": reference.study_uid,
        "frame_of_reference_uid": reference.frame_of_reference_uid,
        "reference_synthetic": reference.synthetic,
        "anonymized": reference.identity.anonymized,
        "note": reference.note,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }

"""The UniToBrain cohort layout: per patient, raw, registered and filtered frames and NLR maps.

Under a cohort root, patient ``MOL-001`` has four sibling folders::

    MOL-001/                                      raw CT perfusion series (JPEG Lossless)
    MOL-001_Registered/                           frames after motion correction
    MOL-001_Registered_Filtered_3mm_20HU/         registered and filtered frames: the seed
                                                  network's input (Filtered00001.dcm, ...)
    MOL-001_Registered_Filtered_3mm_20HU_Maps/
        NLR_CBV/ NLR_CBF/ NLR_TTP/ NLR_MTT/ NLR_Delay/   one DICOM file per slice

Maps are stored as uint16 with *RescaleSlope* 0.01: reading applies the modality LUT and
returns physical values (CBF mL/100 g/min, CBV mL/100 g, TTP, MTT and delay in s), never
display-window values. The frame file names ``Filtered<5 digits>.dcm`` and the map folder
names follow the seed study's public code; raw, registered and map file names are not
documented there and are chosen here (readers do not depend on any file name).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..physics import MAP_UNITS as PHYSICAL_UNITS
from .dicom import read_dicom_study, read_dicom_volume, write_dicom_study, write_dicom_volume
from .study import Study

__all__ = [
    "find_unitobrain_patients",
    "is_unitobrain_folder",
    "read_unitobrain_study",
    "read_unitobrain_maps",
    "write_unitobrain_patient",
    "STAGES",
    "MAP_FOLDERS",
    "MAP_UNITS",
]

log = logging.getLogger(__name__)

#: Folder-name suffix of each stage of the frames.
STAGES = {"raw": "", "registered": "_Registered", "filtered": "_Registered_Filtered_3mm_20HU"}
MAPS_SUFFIX = "_Registered_Filtered_3mm_20HU_Maps"

#: Map key -> folder under the maps folder, and the map's physical unit.
MAP_FOLDERS = {
    "cbv": "NLR_CBV",
    "cbf": "NLR_CBF",
    "ttp": "NLR_TTP",
    "mtt": "NLR_MTT",
    "delay": "NLR_Delay",
}
MAP_UNITS = {key: PHYSICAL_UNITS[key] for key in MAP_FOLDERS}

#: Stored map value -> physical value, and the largest storable value (uint16).
MAP_SLOPE = 0.01
MAP_MAX = 65535 * MAP_SLOPE

_FILE_PATTERNS = {
    "raw": "CT{instance:05d}.dcm",
    "registered": "Registered{instance:05d}.dcm",
    "filtered": "Filtered{instance:05d}.dcm",
}
_MAP_WINDOWS = {  # display (center, width) in physical units
    "cbv": (4.0, 8.0),
    "cbf": (50.0, 100.0),
    "ttp": (20.0, 40.0),
    "mtt": (8.0, 16.0),
    "delay": (5.0, 10.0),
}
_SUFFIXES = sorted([MAPS_SUFFIX, *[s for s in STAGES.values() if s]], key=len, reverse=True)


def _split(name: str) -> tuple[str, str]:
    """Folder name -> (patient id, ``raw``/``registered``/``filtered``/``maps``)."""
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            kind = (
                "maps"
                if suffix == MAPS_SUFFIX
                else next(k for k, v in STAGES.items() if v == suffix)
            )
            return name[: -len(suffix)], kind
    return name, "raw"


def find_unitobrain_patients(root: str | Path) -> list[str]:
    """Patient identifiers under a UniToBrain cohort root, sorted.

    A patient is recognised by at least one suffixed folder (``_Registered``,
    ``_Registered_Filtered_3mm_20HU`` or ``..._Maps``); a lone ``MOL-XXX`` folder is not
    enough to tell it from any other folder.

    Parameters
    ----------
    root : str or Path
        The cohort root.

    Returns
    -------
    list of str
        E.g. ``["MOL-001", "MOL-002"]``; empty when ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    found = set()
    for child in root.iterdir():
        if child.is_dir() and not child.name.startswith("."):
            pid, kind = _split(child.name)
            if kind != "raw":
                found.add(pid)
    return sorted(found)


def is_unitobrain_folder(path: str | Path) -> bool:
    """Whether ``path`` is a UniToBrain cohort root or one folder of a UniToBrain patient.

    Parameters
    ----------
    path : str or Path
        Cohort root, a stage folder (``MOL-001``, ``MOL-001_Registered``, ...) or the maps
        folder.
    """
    path = Path(path)
    if not path.is_dir():
        return False
    if find_unitobrain_patients(path):
        return True
    pid, kind = _split(path.name)
    if kind != "raw":
        return True
    siblings = [s for s in STAGES.values() if s] + [MAPS_SUFFIX]
    return any((path.parent / f"{pid}{suffix}").is_dir() for suffix in siblings)


def _locate(path: Path, patient_id: str | None) -> tuple[Path, str, str | None]:
    """(cohort root, patient id, stage of the folder given or None for the root)."""
    if not path.is_dir():
        raise InputError(path, "expected a UniToBrain cohort root or patient folder")
    patients = find_unitobrain_patients(path)
    if patients:
        if patient_id is None:
            if len(patients) > 1:
                shown = ", ".join(patients[:10]) + (" ..." if len(patients) > 10 else "")
                raise InputError(
                    path,
                    f"a cohort of {len(patients)} patients ({shown}): pass patient_id= "
                    "or the patient's folder",
                )
            patient_id = patients[0]
        elif patient_id not in patients:
            raise InputError("patient_id", f"no patient {patient_id!r} under {path}")
        return path, patient_id, None
    pid, kind = _split(path.name)
    if patient_id is not None and patient_id != pid:
        raise InputError("patient_id", f"{patient_id!r} does not match the folder {path}")
    return path.parent, pid, kind


def read_unitobrain_study(
    path: str | Path,
    *,
    stage: str | None = None,
    patient_id: str | None = None,
    frame_interval: float | None = None,
    workers: int | None = None,
) -> Study:
    """Read one stage of a UniToBrain patient's frames.

    Parameters
    ----------
    path : str or Path
        A cohort root (with ``patient_id``, or holding one patient) or any folder of the
        patient (``MOL-001``, ``MOL-001_Registered``, ``..._Filtered_3mm_20HU``, ``..._Maps``).
    stage : {'raw', 'registered', 'filtered'} or None
        Which frames; by default those of the folder given, ``'filtered'`` (the seed
        network's input) for a cohort root or the maps folder.
    patient_id : str or None
        Patient under a cohort root.
    frame_interval, workers
        As in `read_dicom_study`.

    Returns
    -------
    Study
        ``source="unitobrain"``; metadata adds ``unitobrain_patient`` and
        ``unitobrain_stage``.

    Raises
    ------
    InputError
        Unknown stage, a missing stage folder, several patients without ``patient_id``, or
        any DICOM problem (see `read_dicom_study`).
    """
    path = Path(path)
    if stage is not None and stage not in STAGES:
        raise InputError("stage", f"expected one of {list(STAGES)}, got {stage!r}")
    root, pid, kind = _locate(path, patient_id)
    stage = stage or (kind if kind in STAGES else "filtered")
    folder = root / f"{pid}{STAGES[stage]}"
    if not folder.is_dir():
        raise InputError(folder, f"missing: the {stage} frames of UniToBrain patient {pid}")
    study = read_dicom_study(folder, frame_interval=frame_interval, workers=workers)
    meta = {**study.metadata, "unitobrain_patient": pid, "unitobrain_stage": stage}
    return Study(
        study.frames,
        study.affine,
        study.times,
        source="unitobrain",
        path=folder,
        metadata=meta,
        problems=study.problems,
        source_images=study.source_images,
    )


def read_unitobrain_maps(
    root: str | Path, patient_id: str | None = None, *, workers: int | None = None
) -> dict[str, np.ndarray]:
    """Read a patient's NLR perfusion maps in physical units.

    Parameters
    ----------
    root : str or Path
        Cohort root (or any folder of the patient).
    patient_id : str or None
        E.g. ``"MOL-001"``; optional when ``root`` identifies one patient.
    workers : int or None
        Threads reading files.

    Returns
    -------
    dict of str to ndarray, shape (x, y, z), float32
        Keys ``cbv`` (mL/100 g), ``cbf`` (mL/100 g/min), ``ttp``, ``mtt``, ``delay`` (s):
        stored values through the modality LUT (slope 0.01), not the display window.

    Raises
    ------
    InputError
        A missing maps or map folder (named), maps of different shapes or geometry, or any
        DICOM problem.
    """
    base, pid, _ = _locate(Path(root), patient_id)
    maps_dir = base / f"{pid}{MAPS_SUFFIX}"
    if not maps_dir.is_dir():
        raise InputError(maps_dir, f"missing: the maps folder of UniToBrain patient {pid}")
    maps: dict[str, np.ndarray] = {}
    ref = None
    for key, name in MAP_FOLDERS.items():
        folder = maps_dir / name
        if not folder.is_dir():
            raise InputError(
                folder, f"missing map folder ({key.upper()}, one DICOM file per slice)"
            )
        volume = read_dicom_volume(folder, workers=workers)
        if ref is None:
            ref = (folder, volume)
        elif volume.data.shape != ref[1].data.shape or not np.allclose(
            volume.affine, ref[1].affine, atol=1e-3
        ):
            raise InputError(
                folder,
                f"shape {volume.data.shape} or geometry differs from {ref[0].name} "
                f"{ref[1].data.shape}",
            )
        maps[key] = volume.data
    return maps


def _storable_map(key: str, values: np.ndarray) -> np.ndarray:
    """Map values clipped to what uint16 with slope 0.01 holds, each clip logged."""
    values = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        log.warning("%s: %d NaN or infinite values written as 0", key, int(bad.sum()))
        values = np.where(bad, 0.0, values)
    high, low = int((values > MAP_MAX).sum()), int((values < 0).sum())
    if high:
        log.warning("%s: %d values above %.2f %s clipped", key, high, MAP_MAX, MAP_UNITS[key])
    if low:
        log.warning("%s: %d negative values written as 0", key, low)
    return np.clip(values, 0.0, MAP_MAX)


def _check_inputs(pid: str, stages: dict[str, Study], maps: dict[str, np.ndarray]) -> None:
    if not pid or pid != Path(pid).name or pid.startswith("."):
        raise InputError(
            "patient_id", f"expected a plain folder name such as 'MOL-001', got {pid!r}"
        )
    if set(maps) != set(MAP_FOLDERS):
        raise InputError("maps", f"expected the keys {sorted(MAP_FOLDERS)}, got {sorted(maps)}")
    shape = stages["filtered"].shape
    for key, values in maps.items():
        if np.shape(values) != shape:
            raise InputError(
                f"maps[{key!r}]",
                f"expected shape {shape} (the filtered frames'), got {np.shape(values)}",
            )


def write_unitobrain_patient(
    root: str | Path,
    patient_id: str,
    *,
    raw: Study,
    registered: Study,
    filtered: Study,
    maps: dict[str, np.ndarray],
    raw_compression: str | None = "auto",
    uid_seed: str | None = None,
    overwrite: bool = False,
) -> dict[str, Path]:
    """Write one patient in the UniToBrain layout (four sibling folders under ``root``).

    Parameters
    ----------
    root : str or Path
        Cohort root (created if needed).
    patient_id : str
        Folder name prefix, e.g. ``"MOL-001"``.
    raw, registered, filtered : Study
        Frames of each stage (HU); ``raw`` is written with ``raw_compression``, the others
        uncompressed, all int16 with intercept -1024.
    maps : dict of str to ndarray, shape (x, y, z)
        ``cbv``, ``cbf``, ``ttp``, ``mtt``, ``delay`` in physical units on the filtered
        frames' grid. Stored as uint16 with slope 0.01: values above 655.35 are clipped and
        negatives set to 0, each with a logged warning.
    raw_compression : str or None
        ``'auto'`` (default): JPEG Lossless as in the real data when imagecodecs is
        installed, else uncompressed (logged); or any `write_dicom_study` compression.
    uid_seed : str or None
        Makes every UID deterministic.
    overwrite : bool
        Replace the patient's existing folders.

    Returns
    -------
    dict of str to Path
        The folders written: ``raw``, ``registered``, ``filtered``, ``maps``.

    Raises
    ------
    InputError
        Missing or misshapen maps, a bad patient id, or existing folders without
        ``overwrite``. Nothing is written then; folders appear only once all are complete.
    """
    root = Path(root)
    stages = {"raw": raw, "registered": registered, "filtered": filtered}
    _check_inputs(patient_id, stages, maps)
    targets = {k: root / f"{patient_id}{s}" for k, s in STAGES.items()}
    targets["maps"] = root / f"{patient_id}{MAPS_SUFFIX}"
    for target in targets.values():
        if target.exists() and not overwrite:
            raise InputError(target, "exists; pass overwrite=True to replace it")
    if raw_compression == "auto":
        raw_compression = _auto_compression()
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{patient_id}.", dir=root))
    try:
        _write_all(staging, patient_id, stages, maps, raw_compression, uid_seed)
        for target in targets.values():
            _replace(staging / target.name, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("wrote UniToBrain patient %s under %s", patient_id, root)
    return targets


def _auto_compression() -> str | None:
    try:
        import imagecodecs  # noqa: F401
    except ImportError:
        log.warning("imagecodecs is not installed: raw UniToBrain frames written uncompressed")
        return None
    return "jpeg-lossless"


def _replace(src: Path, target: Path) -> None:
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        os.replace(target, old)
        os.replace(src, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(src, target)


def _write_all(
    staging: Path,
    pid: str,
    stages: dict[str, Study],
    maps: dict[str, np.ndarray],
    raw_compression: str | None,
    uid_seed: str | None,
) -> None:
    seed = None if uid_seed is None else f"{uid_seed}/{pid}"
    from pydicom.uid import generate_uid

    def uid(part: str) -> str:
        return generate_uid(entropy_srcs=None if seed is None else [seed, part])

    ids = {"patient_id": pid, "study_uid": uid("study"), "frame_of_reference_uid": uid("for")}
    for number, (stage, study) in enumerate(stages.items(), start=1):
        write_dicom_study(
            study,
            staging / f"{pid}{STAGES[stage]}",
            compression=raw_compression if stage == "raw" else None,
            series_description=f"CTP {stage}",
            series_number=number,
            file_pattern=_FILE_PATTERNS[stage],
            uid_seed=None if seed is None else f"{seed}/{stage}",
            **ids,
        )
    maps_dir = staging / f"{pid}{MAPS_SUFFIX}"
    maps_dir.mkdir()
    affine = stages["filtered"].affine
    for number, (key, name) in enumerate(MAP_FOLDERS.items(), start=10):
        write_dicom_volume(
            _storable_map(key, maps[key]),
            affine,
            maps_dir / name,
            rescale_slope=MAP_SLOPE,
            rescale_intercept=0.0,
            signed=False,
            window=_MAP_WINDOWS[key],
            series_description=f"{name} ({MAP_UNITS[key]})",
            file_pattern=f"{name}{{slice:03d}}.dcm",
            series_number=number,
            uid_seed=None if seed is None else f"{seed}/{name}",
            **ids,
        )

"""The chain as Python functions: study → brain mask → input functions → perfusion maps.

`compute_maps` is what ``ctpmaps maps`` runs (frames as given, no motion correction or
filtering); `write_maps` writes its outputs. Later stages (lesions, report) extend it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError
from .io.atomic import atomic_dir
from .io.nifti import read_nifti_map, write_nifti_map
from .io.runinfo import write_run_json
from .io.study import Study
from .perfusion import (
    BoxNLRModel,
    BSVDModel,
    OSVDModel,
    PerfusionMaps,
    SSVDModel,
    bolus_arrival_frame,
    enhancement,
)
from .perfusion.aif import (
    InputFunction,
    curve_from_mask,
    default_aif_voxels,
    find_aif,
    find_vof,
    partial_volume_scale,
    read_curve_csv,
    write_input_functions,
)
from .physics import BRAIN_DENSITY, HEMATOCRIT_FACTOR
from .preprocess.brainmask import ct_brain_mask, intracranial_mask

__all__ = ["METHODS", "MapsResult", "compute_maps", "write_maps", "read_mask"]

log = logging.getLogger(__name__)

#: Model-based methods by command-line name.
METHODS = {"nlr": BoxNLRModel, "ssvd": SSVDModel, "bsvd": BSVDModel, "osvd": OSVDModel}


@dataclass
class MapsResult:
    """Perfusion maps of a study and how they were made."""

    maps: PerfusionMaps
    aif: InputFunction
    vof: InputFunction | None
    brain: np.ndarray
    n_baseline: int
    parameters: dict[str, Any]
    timings_s: dict[str, float] = field(default_factory=dict)


def read_mask(path: str | Path, study: Study) -> np.ndarray:
    """A NIfTI mask on the study's grid (same shape; same affine within 1e-3 mm)."""
    data, affine = read_nifti_map(path)
    data = np.asarray(data)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.shape != study.shape:
        raise InputError(path, f"mask shape {data.shape} does not match the study {study.shape}")
    if not np.allclose(affine, study.affine, atol=1e-3):
        raise InputError(path, "mask affine differs from the study's: not on the same grid")
    return data > 0


def compute_maps(
    study: Study,
    *,
    method: str = "nlr",
    mask: np.ndarray | str | Path | None = None,
    aif_mask: np.ndarray | str | Path | None = None,
    aif_csv: str | Path | None = None,
    vof_mask: np.ndarray | str | Path | None = None,
    hematocrit_factor: float = HEMATOCRIT_FACTOR,
    density: float = BRAIN_DENSITY,
    input_study: Study | None = None,
    progress: Callable[[str], None] | None = None,
) -> MapsResult:
    """Perfusion maps of a study, on its frames as given.

    Parameters
    ----------
    study : Study
        HU frames (x, y, z, t) and times.
    method : {"nlr", "ssvd", "bsvd", "osvd"}
        Deconvolution method.
    mask : array or NIfTI path, optional
        Voxels to fit; the automatic CT brain mask by default.
    aif_mask, aif_csv : optional
        A manual AIF (mask of arterial voxels, or ``time, value`` CSV in HU); used as
        given unless ``vof_mask`` is given too. Automatic by default.
    vof_mask : optional
        Manual VOF mask; the AIF is then scaled to its first-pass area.
    hematocrit_factor, density : float
        ``kappa`` and ``rho`` (see `ctpmaps.physics`).
    input_study : Study, optional
        Frames on which to measure the AIF and VOF when ``study`` was filtered: a spatial
        filter blurs small arteries into their surroundings, so the input functions are
        best taken before it (same grid and times). ``study`` itself by default.
    progress : callable, optional
        Called with the name of each stage as it starts.

    Returns
    -------
    MapsResult
        Maps in mL/100 g/min (CBF), mL/100 g (CBV) and s (MTT, TTP, Tmax, delay).
    """
    if method not in METHODS:
        raise InputError("method", f"expected one of {', '.join(METHODS)}, got {method!r}")
    if aif_mask is not None and aif_csv is not None:
        raise InputError("aif", "give either an AIF mask or an AIF CSV, not both")
    say = progress or (lambda s: None)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t0
        timings[name] = time.perf_counter() - t0
        t0 = time.perf_counter()

    say("brain mask")
    if mask is None:
        brain = ct_brain_mask(study.frames, study.spacing)
    else:
        brain = mask if isinstance(mask, np.ndarray) else read_mask(mask, study)
    if not brain.any():
        raise InputError("mask", "the brain mask is empty: nothing to fit")
    n_base = bolus_arrival_frame(study.frames[brain], study.times) + 1
    enh = enhancement(study.frames, study.times, n_baseline=n_base)
    lap("brain_mask")

    say("input functions")
    src = study if input_study is None else input_study
    if src.frames.shape != study.frames.shape:
        raise InputError(
            "input_study", f"expected frames of shape {study.frames.shape}, got {src.frames.shape}"
        )
    src_enh = enh if src is study else enhancement(src.frames, src.times, n_baseline=n_base)
    tissue_ttp = float(study.times[np.argmax(enh[brain].mean(axis=0))])
    aif, vof = _input_functions(src, src_enh, aif_mask, aif_csv, vof_mask, tissue_ttp)
    del src_enh
    lap("input_functions")

    say(f"deconvolution ({method})")
    model = METHODS[method](
        aif.curve, study.times, hematocrit_factor=hematocrit_factor, density=density
    )
    maps = model.fit(enh, mask=brain).maps()
    maps.method = method
    lap("deconvolution")
    params = {
        "method": method,
        "hematocrit_factor": hematocrit_factor,
        "density": density,
        "n_baseline_frames": n_base,
        "aif_source": aif.source,
        "aif_scale": aif.scale,
        "aif_voxels": len(aif.voxels),
        "vof_source": vof.source if vof else None,
    }
    return MapsResult(maps, aif, vof, brain, n_base, params, timings)


def _as_mask(m: np.ndarray | str | Path, study: Study) -> tuple[np.ndarray, str]:
    if isinstance(m, np.ndarray):
        return m.astype(bool), "array"
    return read_mask(m, study), str(m)


def _input_functions(study, enh, aif_mask, aif_csv, vof_mask, tissue_ttp):
    times = study.times
    region = intracranial_mask(study.frames[..., :3].mean(axis=-1), study.spacing)
    if aif_csv is not None:
        aif = read_curve_csv(aif_csv, times)
    elif aif_mask is not None:
        m, name = _as_mask(aif_mask, study)
        aif = curve_from_mask(enh, times, m, kind="aif", source=name)
    else:
        aif = find_aif(
            enh, times, region, n_voxels=default_aif_voxels(study.spacing), tissue_ttp=tissue_ttp
        )
    manual = aif.source != "automatic"
    if vof_mask is not None:
        m, name = _as_mask(vof_mask, study)
        vof = curve_from_mask(enh, times, m, kind="vof", source=name)
    elif not manual:
        vof = find_vof(enh, times, region, aif)
    else:
        vof = None  # a manual AIF is used as given
    if vof is not None:
        k = partial_volume_scale(aif, vof)
        if not 0.2 < k < 20:
            log.warning("AIF partial-volume scale %.2f is implausible; check the AIF and VOF", k)
        aif.curve = aif.curve * k
        aif.scale = k
    return aif, vof


def write_maps(
    result: MapsResult,
    study: Study,
    out: str | Path,
    *,
    inputs: dict[str, str | Path | None] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``cbf, cbv, mtt, ttp, tmax, delay .nii.gz``, ``brain_mask.nii.gz``,
    ``aif.csv``, ``vof.csv``, ``input_functions.png`` and ``run.json`` into ``out``
    (all or nothing)."""
    out = Path(out)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        for name, arr in result.maps.as_dict().items():
            write_nifti_map(
                arr,
                study.affine,
                tmp / f"{name}.nii.gz",
                units=result.maps.units[name],
                description=f"{name.upper()} {result.maps.method}",
            )
        write_nifti_map(
            result.brain, study.affine, tmp / "brain_mask.nii.gz", description="brain mask"
        )
        write_input_functions(tmp, result.aif, result.vof)
        b = result.brain
        summary = {
            f"median_{k}": float(np.nanmedian(v[b])) for k, v in result.maps.as_dict().items()
        }
        summary["units"] = result.maps.units
        write_run_json(
            tmp,
            inputs={"study": study.path, **(inputs or {})},
            parameters=result.parameters,
            timings_s=result.timings_s,
            results=summary,
        )
    return out

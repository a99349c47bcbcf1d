"""Writing phantom studies with their truth, and whole cohorts in parallel.

Layout of ``OUT`` (one folder per patient, written atomically)::

    OUT/cohort.json                    every patient: seed, normal or not, residue, volumes
    OUT/MOL-001/ctp.nii.gz, ctp.json   4D NIfTI (int16 HU) + sidecar with FrameTimes (s)
    OUT/MOL-001/dicom/                 scanner-like CT series (with ``dicom`` format)
    OUT/MOL-001/truth/                 cbf, cbv, mtt, ttp, tmax, delay (.nii.gz, units in
                                       the header), dispersion, residue_k, residue_label,
                                       response_peak, hemisphere, noise_sd, tissue and
                                       *_mask.nii.gz, aif.csv, vof.csv, truth.json
    OUT/unitobrain/MOL-001*/           the UniToBrain layout (with ``unitobrain`` format)

The UniToBrain layout holds registered *and filtered* frames; the phantom does not filter
(it shares no code with the processing chain), so the caller passes the filter as
``filter_frames`` (a picklable callable ``Study -> Study``, e.g.
``functools.partial(ctpmaps.preprocess.filter_study, sigma_spatial_mm=3.0,
sigma_range_hu=20.0)``).
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..io.atomic import atomic_dir, atomic_path
from ..io.nifti import write_nifti_map, write_nifti_study
from ..io.study import Study
from ..physics import MAP_UNITS
from .anatomy import load_template
from .config import PhantomConfig
from .head import HEMISPHERES
from .simulate import PhantomStudy, simulate_patient
from .truth import RESIDUE_LABELS

__all__ = ["FORMATS", "write_phantom_study", "write_cohort", "patient_id"]

log = logging.getLogger(__name__)

#: Output formats of the phantom.
FORMATS = ("nifti", "dicom", "unitobrain")
_MAP_DESCRIPTIONS = {
    "cbf": "CBF",
    "cbv": "CBV",
    "mtt": "MTT",
    "ttp": "TTP",
    "tmax": "Tmax",
    "delay": "delay",
}
#: Further truth volumes: attribute of `Truth`, units, description.
_EXTRA_TRUTH = {
    "dispersion": ("s", "transport-kernel time constant"),
    "residue_k": ("", "residue shape k (1 exponential, inf box)"),
    "residue_label": ("", "residue class: 1 box-like, 2 intermediate, 3 exp-like"),
    "response_peak": ("", "height of transport x residue over CBF"),
    "hemisphere": ("", "hemisphere: 1 left, 2 right"),
    "noise_sd": ("HU", "SD of the added noise"),
}
#: What a caller passes to write the UniToBrain layout's filtered frames.
FilterFrames = Callable[[Study], Study]


def patient_id(index: int) -> str:
    """UniToBrain-style identifier of the ``index``-th patient (1-based): ``MOL-001``."""
    return f"MOL-{index:03d}"


def _write_curves(path: Path, times: np.ndarray, values: np.ndarray, name: str) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["time_s", f"{name}_hu"])
        for t, v in zip(times, values, strict=True):
            w.writerow([f"{t:.4f}", f"{v:.4f}"])


def _write_truth(ph: PhantomStudy, folder: Path) -> None:
    truth, study = ph.truth, ph.study
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in truth.maps.items():
        write_nifti_map(
            arr,
            study.affine,
            folder / f"{name}.nii.gz",
            units=MAP_UNITS[name],
            description=f"true {_MAP_DESCRIPTIONS[name]}",
        )
    for name, arr in truth.masks.items():
        write_nifti_map(
            arr, study.affine, folder / f"{name}_mask.nii.gz", description=f"true {name} mask"
        )
    write_nifti_map(
        truth.tissue, study.affine, folder / "tissue.nii.gz", description="dominant tissue class"
    )
    for name, (units, description) in _EXTRA_TRUTH.items():
        arr = getattr(truth, name)
        if arr is not None:
            write_nifti_map(
                arr, study.affine, folder / f"{name}.nii.gz", units=units, description=description
            )
    _write_curves(folder / "aif.csv", study.times, truth.aif, "aif")
    _write_curves(folder / "vof.csv", study.times, truth.vof, "vof")
    params = {
        **truth.params,
        "label_codes": {"hemisphere": HEMISPHERES, "residue_label": RESIDUE_LABELS},
    }
    with atomic_path(folder / "truth.json") as tmp:
        tmp.write_text(json.dumps(params, indent=1, default=_json_default))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _check_formats(formats: Sequence[str], filter_frames: FilterFrames | None) -> None:
    """Validate output formats before anything is simulated or written."""
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ValueError(f"formats: expected some of {FORMATS}, got {sorted(unknown)}")
    if "unitobrain" in formats and not callable(filter_frames):
        what = "a callable Study -> Study for the UniToBrain layout's filtered frames"
        example = "functools.partial(ctpmaps.preprocess.filter_study, ...)"
        raise InputError(
            "filter_frames", f"expected {what} (e.g. {example}), got {filter_frames!r}"
        )


def write_phantom_study(
    ph: PhantomStudy,
    out: str | Path,
    *,
    formats: Sequence[str] = ("nifti",),
    overwrite: bool = False,
    filter_frames: FilterFrames | None = None,
) -> Path:
    """Write one phantom study and its truth under ``out/<patient_id>/``.

    Parameters
    ----------
    ph : PhantomStudy
    out : str or Path
        Parent folder.
    formats : sequence of {"nifti", "dicom", "unitobrain"}
        With ``unitobrain`` the UniToBrain layout is written under ``out/unitobrain/`` as
        well (raw frames, ideally registered frames, registered frames through
        ``filter_frames``, and the true maps in place of the NLR maps).
    overwrite : bool
        Replace an existing patient folder (one the phantom wrote).
    filter_frames : callable Study -> Study, optional
        The filter of the UniToBrain layout's ``Registered_Filtered`` stage; required with
        ``unitobrain`` (`ctpmaps.errors.InputError` otherwise, before anything is written).

    Returns
    -------
    Path
        The patient folder.
    """
    _check_formats(formats, filter_frames)
    out = Path(out)
    pid = ph.study.metadata.get("patient_id", "PHANTOM")
    target = out / pid
    with atomic_dir(target, overwrite=overwrite) as tmp:
        if "nifti" in formats:
            write_nifti_study(
                ph.study, tmp / "ctp.nii.gz", extra={"Phantom": True, "PatientID": pid}
            )
        if "dicom" in formats:
            from ..io.dicom import write_dicom_study

            acq = ph.truth.params["config"]["acquisition"]
            write_dicom_study(
                ph.study,
                tmp / "dicom",
                patient_id=pid,
                series_description="CT perfusion phantom",
                kvp=acq["kvp"],
                exposure_mas=acq["exposure_mas"],
                manufacturer="ctpmaps phantom",
                uid_seed=f"{pid}-{ph.truth.params['seed']}",
            )
        _write_truth(ph, tmp / "truth")
    if "unitobrain" in formats:
        _write_unitobrain(
            ph, out / "unitobrain", pid, overwrite=overwrite, filter_frames=filter_frames
        )
    return target


def _write_unitobrain(
    ph: PhantomStudy, root: Path, pid: str, *, overwrite: bool, filter_frames: FilterFrames
) -> None:
    from ..io.unitobrain import write_unitobrain_patient

    study = ph.study
    reg_frames = ph.truth.registered if ph.truth.registered is not None else study.frames
    registered = Study(reg_frames, study.affine, study.times, metadata=study.metadata)
    filtered = filter_frames(registered)
    maps = {k: ph.truth.maps[k] for k in ("cbv", "cbf", "ttp", "mtt", "delay")}
    write_unitobrain_patient(
        root,
        pid,
        raw=study,
        registered=registered,
        filtered=filtered,
        maps=maps,
        overwrite=overwrite,
    )


def _one_patient(args: tuple) -> dict[str, Any]:
    cfg, index, seq, out, formats, overwrite, filter_frames = args
    pid = patient_id(index)
    seed = int(seq.generate_state(1)[0])
    ph = simulate_patient(cfg, seed=seed, patient_id=pid)
    folder = write_phantom_study(
        ph, out, formats=formats, overwrite=overwrite, filter_frames=filter_frames
    )
    p = ph.truth.params
    return {
        "patient_id": pid,
        "folder": str(folder),
        "seed": seed,
        "normal_perfusion": p["normal_perfusion"],
        "residue_shape": p["residue_shape"],
        "lesion_side": p["lesion"]["side"],
        "volumes_ml": p["volumes_ml"],
        "reference_cbf": p["reference_cbf"],
    }


def write_cohort(
    out: str | Path,
    *,
    n_patients: int,
    seed: int = 0,
    config: PhantomConfig | None = None,
    formats: Sequence[str] = ("nifti",),
    workers: int | None = None,
    overwrite: bool = False,
    progress: Callable[[dict[str, Any]], None] | None = None,
    filter_frames: FilterFrames | None = None,
) -> list[dict[str, Any]]:
    """Simulate and write ``n_patients`` phantom patients, in parallel on all cores.

    Patient ``k`` gets its own seed from ``numpy.random.SeedSequence(seed).spawn``, so a
    cohort is reproducible whatever the number of workers. ``progress`` is called with
    each finished patient's summary. ``filter_frames`` as in `write_phantom_study`
    (picklable: it goes to the worker processes). Writes ``out/cohort.json`` last.
    """
    if n_patients < 1:
        raise ValueError(f"n_patients: expected >= 1, got {n_patients}")
    _check_formats(formats, filter_frames)
    cfg = config or PhantomConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seqs = np.random.SeedSequence(seed).spawn(n_patients)
    jobs = [
        (cfg, i + 1, s, str(out), tuple(formats), overwrite, filter_frames)
        for i, s in enumerate(seqs)
    ]
    workers = min(workers or os.cpu_count() or 1, n_patients)
    load_template()  # once in the parent: forked workers inherit it
    results: list[dict[str, Any]] = []
    if workers == 1:
        for job in jobs:
            results.append(_one_patient(job))
            if progress:
                progress(results[-1])
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(_one_patient, job) for job in jobs]
            for fut in as_completed(futures):
                results.append(fut.result())
                if progress:
                    progress(results[-1])
    results.sort(key=lambda r: r["patient_id"])
    manifest = {
        "n_patients": n_patients,
        "seed": seed,
        "formats": list(formats),
        "config": cfg.to_dict(),
        "patients": results,
    }
    with atomic_path(out / "cohort.json") as tmp:
        tmp.write_text(json.dumps(manifest, indent=1, default=_json_default))
    return results

"""Shared by the U-Net scripts: maps of held-out phantom patients, scored inside the brain.

Each patient goes through the inference path a user runs (NIfTI frames, the guided
bilateral filter of the models' training frames, `predict_maps`), and each predicted map is
compared on the normalised [0, 1] scale (`ctpmaps.nn.normalise`) with the phantom's true map
and with the NLR map fitted on the same filtered frames (cached by `ctpmaps.nn.dataset`),
inside the phantom's brain mask, beside a constant predictor (the reference's brain mean,
`ctpmaps.nn.MapErrors`) and beside NLR's own error against the truth. Two parts of the
brain are scored apart too: its outer rim (``rim_mm``), where grid and edge effects show,
and the true hypoperfused tissue (the phantom's ``hypoperfusion_mask``), where a ring
around lesions would show.
"""

from __future__ import annotations

import datetime
import os
import platform
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage as ndi

from ctpmaps.errors import FitError
from ctpmaps.io.nifti import read_nifti_map, read_nifti_study
from ctpmaps.nn import MapErrors, filter_sigmas_of, predict_maps
from ctpmaps.nn.dataset import Cohort, load_patient
from ctpmaps.nn.normalise import TARGET_RANGES, map_to_slices, normalise_target
from ctpmaps.preprocess.bilateral import filter_study

#: References every prediction is scored against.
REFERENCES = ("truth", "nlr")


def machine() -> str:
    """CPU, cores, torch, threads, CUDA and date: the first line of every output."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{cpu}, {n} CPUs, {gpu}, torch {torch.__version__} ({torch.get_num_threads()} "
        f"threads), load {load:.1f}, {datetime.datetime.now().isoformat(timespec='minutes')}"
    )


def start(args) -> Path:
    """Torch threads (``args.threads``), the machine line; returns the cache folder
    (``args.cache_dir`` or ``args.out / "cache"``)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    print(machine(), flush=True)
    return args.cache_dir or args.out / "cache"


def _lesion(cohort: Cohort, pid: str) -> np.ndarray:
    """The phantom's true hypoperfused tissue ``(z, H, W)`` (none for a normal patient)."""
    path = cohort.root / pid / "truth" / "hypoperfusion_mask.nii.gz"
    return map_to_slices(np.asarray(read_nifti_map(path)[0]) > 0)


def _rim(mask_slices: np.ndarray, spacing_mm: float, rim_mm: float) -> np.ndarray:
    """Brain voxels within ``rim_mm`` of its edge, per slice ``(z, H, W)``."""
    r = max(1, round(rim_mm / spacing_mm))
    inner = ndi.binary_erosion(mask_slices, np.ones((1, 2 * r + 1, 2 * r + 1), bool))
    return mask_slices & ~inner


class Scores:
    """`MapErrors` per (label, map, reference, region), summed over patients."""

    def __init__(self) -> None:
        self.sums: dict[tuple[str, str, str, str], MapErrors] = {}

    def add(self, label, target, reference, pred, ref, regions: dict) -> None:
        for region, mask in regions.items():
            key = (label, target, reference, region)
            self.sums.setdefault(key, MapErrors()).add(pred, ref, mask)

    def result(self, label, target, reference, region="brain") -> dict[str, float]:
        return self.sums[(label, target, reference, region)].result()

    def labels(self) -> list[str]:
        return list(dict.fromkeys(k[0] for k in self.sums))


def _references(cohort: Cohort, pid: str, target: str, cache_dir, sigmas) -> dict:
    """The true and NLR maps of one patient on [0, 1] (``nlr`` None where the fit failed),
    its brain mask and pixel size."""
    refs: dict = {}
    for source in REFERENCES:
        try:
            p = load_patient(
                cohort,
                pid,
                target=target,
                source=source,
                n_frames=1,
                cache_dir=cache_dir,
                filter_sigmas=sigmas,
            )
        except FitError as exc:
            print(f"  {pid}: no {source.upper()} {target.upper()} ({exc})", flush=True)
            refs[source] = None
            continue
        refs[source], refs["mask"], refs["spacing"] = p.target, p.mask, p.spacing_mm
    return refs


def score_models(
    model_sets: dict[str, Sequence],
    cohort: Cohort,
    patients: Sequence[str],
    *,
    cache_dir: Path | None,
    resample: dict[str, bool] | None = None,
    rim_mm: float = 4.0,
    say=print,
) -> Scores:
    """Score sets of models (label -> `LoadedModel` list) on held-out phantom patients.

    Every set must use the same filter (`filter_sigmas_of`); ``resample[label]`` False runs
    that set on the study's own grid. NLR against the truth is scored as label ``NLR``.
    """
    sigmas = {filter_sigmas_of(models) for models in model_sets.values()}
    if len(sigmas) != 1:
        raise SystemExit(f"model sets trained on differently filtered frames: {sigmas}")
    (sigma,) = sigmas
    targets = sorted({m.target for models in model_sets.values() for m in models})
    scores = Scores()
    for pid in patients:
        say(f"  {pid}")
        study = filter_study(
            read_nifti_study(cohort.root / pid / "ctp.nii.gz"),
            sigma_spatial_mm=sigma[0],
            sigma_range_hu=sigma[1],
        )
        refs = {t: _references(cohort, pid, t, cache_dir, sigma) for t in targets}
        brain = refs[targets[0]]["mask"]
        regions = {
            "brain": brain,
            "rim": _rim(brain, refs[targets[0]]["spacing"][0], rim_mm),
            "lesion": brain & _lesion(cohort, pid),
        }
        for t in targets:
            if refs[t]["nlr"] is not None:
                scores.add("NLR", t, "truth", refs[t]["nlr"], refs[t]["truth"], regions)
        mask_xyz = np.ascontiguousarray(brain.transpose(2, 1, 0))
        for label, models in model_sets.items():
            flag = (resample or {}).get(label, True)
            maps = predict_maps(study, models, mask=mask_xyz, resample=flag)
            for m in models:
                pred = normalise_target(map_to_slices(getattr(maps, m.target)), m.target)
                for reference in REFERENCES:
                    ref = refs[m.target][reference]
                    if ref is not None:
                        scores.add(label, m.target, reference, pred, ref, regions)
    return scores


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("inf") if a > 0 else float("nan")


def table(scores: Scores, targets: Sequence[str]) -> list[str]:
    """Markdown rows: per map and reference, each label's MSE inside the brain, in its rim
    and in the true lesion, the constant predictor's, the ratio and the mean absolute error
    in the map's unit."""
    header = (
        "| map | reference | maps | MSE brain | MSE rim | MSE lesion | const MSE brain "
        "| MSE / const | MAE brain (unit) |"
    )
    lines = [header, "|" + "---|" * 9]
    for t in targets:
        low, high = TARGET_RANGES[t]
        for reference in REFERENCES:
            for label in scores.labels():
                if (label, t, reference, "brain") not in scores.sums:
                    continue
                r = scores.result(label, t, reference)
                rim = scores.result(label, t, reference, "rim")["mse_brain"]
                lesion = scores.result(label, t, reference, "lesion")["mse_brain"]
                lines.append(
                    f"| {t.upper()} | {reference} | {label} | {r['mse_brain']:.4f} | "
                    f"{rim:.4f} | {lesion:.4f} | {r['const_mse_brain']:.4f} | "
                    f"{_ratio(r['mse_brain'], r['const_mse_brain']):.2f} | "
                    f"{r['mae_brain'] * (high - low):.2f} |"
                )
    return lines

"""Rigid motion correction of CT perfusion frames: screening, then one of two registrations.

Every frame is registered to a reference frame (the first by default) with a rigid
transform (`ctpmaps.preprocess.motion.geometry` for the convention). Two methods
(`METHODS`):

- ``"gauss-newton"`` (default): all moved frames at once, batched rigid Gauss-Newton on the
  sum of squared differences in torch, CPU or CUDA (`ctpmaps.preprocess.motion.gauss_newton`).
  On a 512 x 512 x 8 x 89 phantom whose every frame moved it is several times faster than
  the seed's elastix settings and at least as accurate (`benchmarks/bench_motion.py`,
  BENCHMARKS.md).
- ``"elastix-seed"``: the seed's elastix protocol, frame by frame in a child process
  (`ctpmaps.preprocess.motion.elastix`); ``levels``, ``shrink``, ``samples`` and
  ``iterations`` set its pyramid.

Skipping still frames (measured, not assumed): every frame is first compared with the
reference on volumes block-averaged to about 2 mm and smoothed: a few Gauss-Newton steps of
a rigid least-squares fit (Lucas-Kanade) estimate its motion, and the largest displacement
that estimate gives over the head's bounding box is the frame's screened motion. Frames at
most ``skip_threshold_mm`` from the reference (default 0.2 mm) keep an identity transform
(`ctpmaps.preprocess.motion.screen`; about 1.5 s for 89 frames of 512 x 512 x 8, no itk and
no torch, so a still study loads neither). With ``elastix-seed`` a frame that moved is
also compared with the last frame registered before it (its anchor): if it has not moved
since, it shares the anchor's transform (a head that moved once and stayed costs one
elastix run, not one per frame).

Edge slices: through-plane motion moves anatomy in and out of a thin slab (8 x 5 mm), so the
outermost slices have no counterpart in the other frame; by default the first and last
slice are left out of the metric (``edge_slices=1``; 0 samples every slice as the seed did).
With elastix this halved the rotation error on a head-like test with tilts up to 3 degrees
(RMS 0.33 to 0.19 deg); the Gauss-Newton method also tapers the weight of points that land
near the edge slices of the moved frame.

Applying the transforms: linear interpolation (scipy.ndimage), one resampling per
registered frame. Where the transform reads outside the field of view the frame's nearest
edge value is used by default (air in-plane; along z the edge slice, rather than inventing
air inside the brain when the head tilts), or ``fill_hu`` if given.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..._threads import n_threads as _n_threads
from ...errors import InputError
from ...io._layout import c_order_copy
from . import elastix, gauss_newton  # gauss_newton imports torch only when it runs
from .geometry import params_of_matrix, resample_frames
from .result import MotionResult
from .screen import SCREEN_MM, Screen, plan

if TYPE_CHECKING:
    from ...io.study import Study

__all__ = ["METHODS", "DEFAULT_METHOD", "register_frames", "register_study"]

log = logging.getLogger(__name__)

#: Registration methods (module docstring).
METHODS = ("gauss-newton", "elastix-seed")
DEFAULT_METHOD = "gauss-newton"


def register_frames(
    frames: np.ndarray,
    spacing,
    *,
    method: str = DEFAULT_METHOD,
    reference: int = 0,
    skip_threshold_mm: float = 0.2,
    edge_slices: int = 1,
    flag_mm: float = 1.0,
    flag_deg: float = 1.0,
    fill_hu: float | None = None,
    times: np.ndarray | None = None,
    threads: int | None = None,
    device: str | None = None,
    seed: int = 0,
    out: np.ndarray | None = None,
    levels: int | None = None,
    shrink: tuple[int, ...] | None = None,
    samples: tuple[int, ...] | None = None,
    iterations: int | tuple[int, ...] | None = None,
) -> MotionResult:
    """Rigidly register every frame to a reference frame.

    Parameters
    ----------
    frames : ndarray, shape (x, y, z, t)
        Attenuation in HU (computed in float32).
    spacing : sequence of 3 floats
        Voxel size in mm along (x, y, z).
    method : {"gauss-newton", "elastix-seed"}
        Batched Gauss-Newton in torch (default) or the seed's elastix protocol.
    reference : int
        Index of the frame the others are registered to (seed: the first).
    skip_threshold_mm : float
        Screened displacement (mm) under which a frame counts as still, against the
        reference (identity) or, with elastix, against its anchor (shares its transform);
        0 registers every frame but the reference.
    edge_slices : int
        Slices at each end of z left out of the metric, because through-plane motion
        moves anatomy in and out of the slab there; 0 samples every slice (as the seed).
        Ignored when fewer than ``2 * edge_slices + 3`` slices.
    flag_mm, flag_deg : float
        A frame is flagged when any translation exceeds ``flag_mm`` or any rotation exceeds
        ``flag_deg``.
    fill_hu : float, optional
        Value where a registered frame reads outside the field of view; default the nearest
        edge value.
    times : ndarray, shape (t,), optional
        Frame times in s, kept for the report.
    threads : int, optional
        Worker threads; default all CPUs this process may use.
    device : str, optional
        ``gauss-newton`` only: torch device; default ``"cuda"`` when available, else
        ``"cpu"``.
    seed : int
        Random seed of the sample positions, for reproducible results.
    out : ndarray, shape (x, y, z, t), float32, optional
        Where to write the registered frames; may be ``frames`` itself (in place).
    levels, shrink, samples, iterations : optional
        ``elastix-seed`` only: resolutions (seed: 2), in-plane down-sampling per level
        (8, 1; thicker axes get the factor giving about the same voxel size in mm), random
        samples per iteration (2,000, 8,000) and iterations per level (300).

    Returns
    -------
    MotionResult

    Raises
    ------
    InputError
        Bad shapes, spacing, reference, method or options, or non-finite frames.
    CtpmapsError
        Elastix failed on a frame.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x, y, z = np.meshgrid(*[np.arange(n) - n / 2 for n in (32, 32, 6)], indexing="ij")
    >>> head = 1000 * np.exp(-(x**2 + y**2) / 60 - z**2 / 8) - 1000
    >>> frames = np.stack([head + rng.normal(0, 5, head.shape) for _ in range(3)], axis=-1)
    >>> result = register_frames(frames.astype(np.float32), (1.5, 1.5, 5.0))
    >>> result.registered.tolist(), float(np.abs(result.translations_mm).max())
    ([False, False, False], 0.0)
    """
    frames, spacing = _check_frames(frames, spacing)
    n_t = frames.shape[3]
    settings = _method_settings(
        method, frames.shape[:3], spacing, device, seed,
        levels=levels, shrink=shrink, samples=samples, iterations=iterations,
    )  # fmt: skip
    edge_slices, times = _check_options(
        n_t, frames.shape[2], reference, edge_slices, times,
        skip_threshold_mm=skip_threshold_mm, flag_mm=flag_mm, flag_deg=flag_deg,
    )  # fmt: skip
    out = frames = _output(frames, out)  # the rest reads the (C-ordered) copy, in place
    n_threads = _n_threads(threads)
    timings: dict[str, float] = {}
    center = (np.array(frames.shape[:3]) - 1) / 2 * np.array(spacing)
    mats, screen_mm, source = _transforms(
        frames, spacing, reference, center, settings, skip_threshold_mm, edge_slices, n_threads,
        timings,
    )  # fmt: skip
    shared = np.flatnonzero(source >= 0)
    mats[shared] = mats[source[shared]]
    t0 = time.perf_counter()
    resample_frames(frames, out, list(shared), mats, spacing, fill_hu, n_threads)
    timings["resample"] = time.perf_counter() - t0

    params = np.array([params_of_matrix(m, center) for m in mats])
    rotations, translations = params[:, :3], params[:, 3:]
    rotations[source < 0], translations[source < 0] = 0.0, 0.0  # exact zeros, not round-off
    return MotionResult(
        frames=out,
        translations_mm=translations,
        rotations_deg=rotations,
        registered=source == np.arange(n_t),
        source=source,
        flagged=_flag(translations, rotations, flag_mm, flag_deg, times),
        screen_mm=screen_mm,
        center_mm=center,
        reference=int(reference),
        times=times,
        flag_mm=float(flag_mm),
        flag_deg=float(flag_deg),
        parameters={
            **settings["record"],
            "skip_threshold_mm": float(skip_threshold_mm),
            "edge_slices": int(edge_slices),
            "screen_voxel_mm": SCREEN_MM,
            "fill_hu": fill_hu,
        },
        timings=timings,
    )


def _transforms(frames, spacing, reference, center, settings, threshold, edge, n_threads, timings):
    """Screen, then register the frames that moved; (t, 4, 4) transforms (shared ones not
    yet filled in), screened displacements (t,) and sources (t,) (see `MotionResult`)."""
    n_t = frames.shape[3]
    elx = settings["method"] == "elastix-seed"
    child = elastix.ElastixProcess().start() if elx else None  # itk loads while we screen
    try:
        t0 = time.perf_counter()
        screen = Screen(frames, spacing, center, n_threads)
        screen_mm, source = plan(screen, reference, threshold, share=elx)
        todo = [int(k) for k in np.flatnonzero(source == np.arange(n_t))]
        timings["screen"] = time.perf_counter() - t0
        _log_screen(source, screen_mm, threshold, len(todo))
        mats = np.repeat(np.eye(4)[None], n_t, axis=0)
        if todo:
            mats[todo] = _fit(child, frames, spacing, reference, todo, center, settings,
                              n_threads, timings, edge)  # fmt: skip
    finally:
        if child is not None:
            child.close()
    return mats, screen_mm, source


def _fit(child, frames, spacing, reference, todo, center, settings, n_threads, timings, edge):
    """Transforms (len(todo), 4, 4) of the frames in ``todo`` by the chosen method."""
    if child is not None:
        return elastix.fit_frames(child, frames, spacing, reference, todo, settings["pmap"],
                                  center, n_threads, timings, edge)  # fmt: skip
    t0 = time.perf_counter()
    device = _device(settings["device"])  # imports torch
    timings["torch_load"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    mats = gauss_newton.fit_frames(
        frames, spacing, reference, todo, center,
        edge_slices=edge, threads=n_threads, device=device, seed=settings["seed"],
    )  # fmt: skip
    timings["register"] = time.perf_counter() - t0
    log.info("gauss-newton: %d frames on %s in %.1f s", len(todo), device, timings["register"])
    return mats


def _method_settings(method, shape, spacing, device, seed, **elastix_options) -> dict[str, Any]:
    """Validate the method and its options; what it needs and what the result records."""
    if method not in METHODS:
        raise InputError("method", f"expected one of {', '.join(METHODS)}, got {method!r}")
    if not isinstance(seed, (int, np.integer)):
        raise InputError("seed", f"expected an integer, got {seed!r}")
    if method == "elastix-seed":
        if device is not None:
            raise InputError("device", "only for method 'gauss-newton' (elastix runs on the CPU)")
        given = {k: v for k, v in elastix_options.items() if v is not None}
        opts = {**elastix.SEED_OPTIONS, **given}
        pmap = elastix.parameter_map(elastix.schedule(shape, spacing, **opts), seed)
        return {
            "method": method,
            "pmap": pmap,
            "record": {"method": method, "elastix": {k: list(v) for k, v in pmap.items()}},
        }
    for name, value in elastix_options.items():
        if value is not None:
            raise InputError(name, f"only for method 'elastix-seed', got {value!r}")
    if device is not None:
        _device(device)  # a bad device fails here, before any long computation
    levels = [{"voxel_mm": mm, "points": n, "iterations": it} for mm, n, it in gauss_newton.LEVELS]
    return {
        "method": method,
        "device": device,
        "seed": int(seed),
        "record": {"method": method, "gauss_newton": {"levels": levels, "seed": int(seed)}},
    }


def _device(device: str | None) -> str:
    """The torch device to use (default CUDA when present); ``"cpu"`` needs no torch import
    to check."""
    if device == "cpu":
        return device
    import torch

    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InputError(
            "device", f"expected a torch device such as 'cpu' or 'cuda', got {device!r}"
        ) from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError("device", "CUDA was asked for but torch finds no CUDA device")
    return str(dev)


def _log_screen(source, screen_mm, threshold, n_todo) -> None:
    log.info(
        "motion screening: %d of %d frames moved more than %.2f mm (largest %.2f mm); "
        "%d need registration",
        int((source >= 0).sum()), len(source) - 1, threshold,
        float(np.max(screen_mm, initial=0.0)), n_todo,
    )  # fmt: skip


def register_study(study: Study, **options: Any) -> tuple[Study, MotionResult]:
    """`register_frames` on a `Study`; returns a registered copy and the result.

    ``options`` are those of `register_frames` (``times`` is taken from the study).
    """
    result = register_frames(study.frames, study.spacing, times=study.times, **options)
    registered = replace(
        study, frames=result.frames, metadata=dict(study.metadata), problems=list(study.problems)
    )
    return registered, result


def _check_options(n_t, n_z, reference, edge_slices, times, **thresholds):
    """Validate the scalar options; returns the edge slices to use and the times."""
    if not (isinstance(reference, (int, np.integer)) and 0 <= reference < n_t):
        raise InputError(
            "reference", f"expected a frame index in [0, {n_t - 1}], got {reference!r}"
        )
    if not (isinstance(edge_slices, (int, np.integer)) and edge_slices >= 0):
        raise InputError("edge_slices", f"expected an integer >= 0, got {edge_slices!r}")
    for name, value in thresholds.items():
        if not (np.isscalar(value) and np.isfinite(value) and value >= 0):
            raise InputError(name, f"expected a finite number >= 0, got {value!r}")
    if times is not None:
        times = np.asarray(times, float)
        if times.shape != (n_t,):
            raise InputError(
                "times", f"expected {n_t} values (one per frame), got shape {times.shape}"
            )
    return (edge_slices if n_z >= 2 * edge_slices + 3 else 0), times


def _flag(translations, rotations, flag_mm, flag_deg, times) -> np.ndarray:
    """Frames beyond either threshold: one warning for the study, each frame at INFO."""
    flagged = (np.abs(translations) > flag_mm).any(axis=1) | (np.abs(rotations) > flag_deg).any(
        axis=1
    )
    idx = np.flatnonzero(flagged)
    for k in idx:
        when = f" (t = {times[k]:.1f} s)" if times is not None else ""
        log.info(
            "frame %d%s moved beyond %.1f mm / %.1f deg: t = %s mm, r = %s deg",
            k, when, flag_mm, flag_deg,
            np.round(translations[k], 2).tolist(), np.round(rotations[k], 2).tolist(),
        )  # fmt: skip
    if idx.size:
        log.warning(
            "%d of %d frames moved beyond %.1f mm / %.1f deg (frames %d-%d, max %.2f mm %.2f deg)",
            idx.size, len(flagged), flag_mm, flag_deg, idx[0], idx[-1],
            np.abs(translations[idx]).max(), np.abs(rotations[idx]).max(),
        )  # fmt: skip
    return flagged


def _check_frames(frames, spacing):
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.size == 0:
        raise InputError(
            "frames", f"expected a non-empty 4D array (x, y, z, t), got shape {frames.shape}"
        )
    if not (np.issubdtype(frames.dtype, np.floating) or np.issubdtype(frames.dtype, np.integer)):
        raise InputError("frames", f"expected real numbers in HU, got dtype {frames.dtype}")
    if min(frames.shape[:3]) < 2:
        raise InputError(
            "frames", f"expected at least 2 voxels along x, y and z, got shape {frames.shape}"
        )
    spacing = np.asarray(spacing, dtype=np.float64)
    if spacing.shape != (3,) or not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise InputError(
            "spacing", f"expected 3 positive voxel sizes in mm (x, y, z), got {spacing.tolist()}"
        )
    if not np.isfinite(frames.sum(dtype=np.float64)):
        raise InputError("frames", "contains NaN or infinite values")
    return frames, tuple(float(s) for s in spacing)


def _output(frames: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    if out is None:
        return c_order_copy(frames)
    if not isinstance(out, np.ndarray) or out.shape != frames.shape or out.dtype != np.float32:
        raise InputError("out", f"expected a float32 array of shape {frames.shape}")
    if out is not frames:
        c_order_copy(frames, out)
    return out

"""Rigid motion correction of CT perfusion frames with elastix, as in the seed pipeline.

The seed registered every frame to the first (elastix 5.0.1): Euler (rigid) transform, sum
of squared differences, stochastic gradient descent, two resolutions (8x down-sampled, then
full) with 2,000 and 8,000 random samples and 300 iterations each. `register_frames` runs
that protocol through itk-elastix with the physical spacing set on the images, so
translations are in mm and rotations about the volume centre.

Down-sampling along thick slices: the seed's 8x is in-plane. Along an axis with coarser
voxels the factor is reduced so that the coarse voxel has about the same size in mm as the
in-plane one (0.49 mm x 8 = 3.9 mm; 5 mm slices are already coarser and keep factor 1), and
no axis is shrunk below 4 voxels.

Skipping still frames (measured, not assumed): every frame is first compared with the
reference on volumes block-averaged to about 2 mm and smoothed: a few Gauss-Newton steps of
a rigid least-squares fit (Lucas-Kanade) estimate its motion, and the largest displacement
that estimate gives over the head's bounding box is the frame's screened motion. Frames at
most ``skip_threshold_mm`` from the reference (default 0.2 mm, under the 0.3 mm accuracy
aimed at) keep an identity transform. A frame that moved is compared in the same way with
the last frame registered before it (its anchor): if it has not moved since, it shares the
anchor's transform (a head that moved once and stayed costs one registration, not one per
frame); otherwise elastix registers it and it becomes the anchor. Comparing with the anchor
rather than the previous frame keeps slow drifts from accumulating. The screening takes
about 1.5 s for 89 frames of 512 x 512 x 8 and needs no itk, so a still study never loads it
(`ctpmaps.preprocess._motion_screen`). On a 512 x 512 x 8 x 89 phantom patient whose head
moved in 83 frames (ramps up to 1.2 mm and 2.7 degrees) 10 frames went through elastix and
the transforms were recovered to 0.05 mm and 0.07 degrees RMS.

Edge slices: through-plane motion moves anatomy in and out of a thin slab (8 x 5 mm), so the
outermost slices have no counterpart in the other frame; by default the first and last
slice are left out of the metric (a fixed-image mask, ``edge_slices=1``). On a head-like
test with tilts of up to 3 degrees this halves the rotation error (RMS 0.33 to 0.19 deg);
``edge_slices=0`` samples every slice as the seed did.

Applying the transforms: linear interpolation (scipy.ndimage), one resampling per
registered frame. Where the transform reads outside the field of view the frame's nearest
edge value is used by default (air in-plane; along z the edge slice, rather than inventing
air inside the brain when the head tilts), or ``fill_hu`` if given.

Speed and memory: elastix runs in one child process (`ctpmaps.preprocess._elastix_worker`)
on a pool of threads (one frame per thread, one elastix thread each; itk releases the GIL),
each thread keeping its fixed image, mask and parameter object for all its frames. Loading
itk makes a process about 0.8-1 GB larger (1 GB when it also imports torch); in the child
that memory is returned when the registrations end instead of staying through the filter and
the perfusion fit.
"""

from __future__ import annotations

import logging
import pickle
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from ..errors import CtpmapsError, InputError
from ._motion_screen import SCREEN_MM, Screen, plan
from ._threads import n_threads as _n_threads
from .motion_report import motion_report

if TYPE_CHECKING:
    from ..io.study import Study

__all__ = [
    "MotionResult",
    "register_frames",
    "register_study",
    "motion_report",
    "rigid_matrix",
    "resample_rigid",
]

log = logging.getLogger(__name__)


@dataclass
class MotionResult:
    """Registered frames and the rigid transform found for each frame.

    The transform of frame ``k`` maps a point ``x`` of the reference (mm, array axes) to
    where that anatomy is in frame ``k``: ``T(x) = R (x - center) + center + t`` with
    ``R = Rz(rz) Ry(ry) Rx(rx)`` (rotate about x, then y, then z). The registered frame is
    ``frame_k(T(x))``.

    Attributes
    ----------
    frames : ndarray, shape (x, y, z, t), float32
        Registered frames in HU (frames screened still are copied unchanged).
    translations_mm : ndarray, shape (t, 3)
        ``t`` along the array axes (x, y, z), mm.
    rotations_deg : ndarray, shape (t, 3)
        Rotations about the x, y and z axes through ``center_mm``, degrees.
    registered : ndarray, shape (t,), bool
        Frames that went through elastix.
    source : ndarray, shape (t,), int
        Where each transform comes from: ``-1`` identity (the reference, or screened still
        against it), ``k`` itself (elastix), or an earlier registered frame whose transform
        it shares (screened still since that frame).
    flagged : ndarray, shape (t,), bool
        Frames whose translation exceeds ``flag_mm`` or rotation exceeds ``flag_deg`` (any
        axis).
    screen_mm : ndarray, shape (t,)
        The screening estimate of each frame's largest displacement over the head, mm.
    center_mm : ndarray, shape (3,)
        Centre of rotation: the volume centre, mm from voxel (0, 0, 0) along the array axes.
    reference : int
        Index of the reference frame.
    times : ndarray, shape (t,), or None
        Frame times in s, when known.
    flag_mm, flag_deg : float
        Thresholds used for ``flagged``.
    parameters : dict
        The elastix parameter map and the screening settings, as used.
    timings : dict
        Seconds spent screening, loading itk, registering and resampling.
    """

    frames: np.ndarray
    translations_mm: np.ndarray
    rotations_deg: np.ndarray
    registered: np.ndarray
    source: np.ndarray
    flagged: np.ndarray
    screen_mm: np.ndarray
    center_mm: np.ndarray
    reference: int
    times: np.ndarray | None
    flag_mm: float
    flag_deg: float
    parameters: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def matrices(self) -> np.ndarray:
        """Per-frame transforms as (t, 4, 4) homogeneous matrices in mm (see class doc)."""
        return np.stack(
            [
                rigid_matrix(r, t, self.center_mm)
                for r, t in zip(self.rotations_deg, self.translations_mm, strict=True)
            ]
        )

    def world_matrices(self, affine: np.ndarray) -> np.ndarray:
        """The transforms in world mm (e.g. scanner RAS+) for a study with this ``affine``.

        Parameters
        ----------
        affine : ndarray, shape (4, 4)
            Voxel index to world mm (`Study.affine`).

        Returns
        -------
        ndarray, shape (t, 4, 4)
            Each maps a world point of the reference to where that anatomy is in the frame.
        """
        affine = np.asarray(affine, float)
        spacing = np.linalg.norm(affine[:3, :3], axis=0)
        to_world = affine @ np.diag([*(1.0 / spacing), 1.0])  # array mm -> world mm
        return to_world @ self.matrices @ np.linalg.inv(to_world)

    def summary(self) -> dict[str, Any]:
        """JSON-ready record for ``run.json``: thresholds, flagged frames and transforms."""
        return {
            "reference": self.reference,
            "center_mm": [round(float(v), 4) for v in self.center_mm],
            "flag_mm": self.flag_mm,
            "flag_deg": self.flag_deg,
            "n_registered": int(self.registered.sum()),
            "n_shared": int(((self.source >= 0) & ~self.registered).sum()),
            "flagged_frames": [int(k) for k in np.flatnonzero(self.flagged)],
            "max_translation_mm": round(float(np.abs(self.translations_mm).max(initial=0)), 4),
            "max_rotation_deg": round(float(np.abs(self.rotations_deg).max(initial=0)), 4),
            "translations_mm": np.round(self.translations_mm, 4).tolist(),
            "rotations_deg": np.round(self.rotations_deg, 4).tolist(),
            "parameters": self.parameters,
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
        }


def rigid_matrix(rotations_deg, translations_mm, center_mm) -> np.ndarray:
    """Homogeneous (4, 4) matrix of ``x -> Rz Ry Rx (x - center) + center + t`` in mm."""
    rot = Rotation.from_euler("xyz", np.asarray(rotations_deg, float), degrees=True).as_matrix()
    center = np.asarray(center_mm, float)
    m = np.eye(4)
    m[:3, :3] = rot
    m[:3, 3] = center - rot @ center + np.asarray(translations_mm, float)
    return m


def resample_rigid(
    volume: np.ndarray,
    spacing,
    matrix: np.ndarray,
    *,
    fill_hu: float | None = None,
    output: np.ndarray | None = None,
) -> np.ndarray:
    """Return ``volume(matrix @ x)`` on the voxel grid (mm from voxel 0), linear interpolation.

    Parameters
    ----------
    volume : ndarray, shape (x, y, z)
        Image to resample.
    spacing : sequence of 3 floats
        Voxel size in mm.
    matrix : ndarray, shape (4, 4)
        Maps output positions (mm) to input positions (mm).
    fill_hu : float, optional
        Value outside the input; default the nearest edge value.
    output : ndarray, shape (x, y, z), optional
        Where to write (e.g. a frame of a 4D array).
    """
    s = np.asarray(spacing, float)
    lin = matrix[:3, :3] * s[None, :] / s[:, None]  # index -> index
    offset = matrix[:3, 3] / s
    mode, cval = ("nearest", 0.0) if fill_hu is None else ("constant", float(fill_hu))
    src = np.ascontiguousarray(volume, dtype=np.float32)
    return ndimage.affine_transform(
        src,
        lin,
        offset,
        output=output if output is not None else np.float32,
        order=1,
        mode=mode,
        cval=cval,
    )


def register_frames(
    frames: np.ndarray,
    spacing,
    *,
    reference: int = 0,
    levels: int = 2,
    shrink: tuple[int, ...] = (8, 1),
    samples: tuple[int, ...] = (2000, 8000),
    iterations: int | tuple[int, ...] = 300,
    skip_threshold_mm: float = 0.2,
    edge_slices: int = 1,
    flag_mm: float = 1.0,
    flag_deg: float = 1.0,
    fill_hu: float | None = None,
    times: np.ndarray | None = None,
    threads: int | None = None,
    seed: int = 0,
    out: np.ndarray | None = None,
) -> MotionResult:
    """Rigidly register every frame to a reference frame (seed protocol, elastix).

    Parameters
    ----------
    frames : ndarray, shape (x, y, z, t)
        Attenuation in HU (computed in float32).
    spacing : sequence of 3 floats
        Voxel size in mm along (x, y, z).
    reference : int
        Index of the frame the others are registered to (seed: the first).
    levels : int
        Number of resolutions (seed: 2).
    shrink : sequence of int, one per level
        In-plane down-sampling factor per level (seed: 8, then 1); thicker axes get the
        factor giving about the same voxel size in mm (module docstring).
    samples : sequence of int, one per level
        Random samples per iteration (seed: 2,000 and 8,000).
    iterations : int or sequence of int
        Iterations per level (seed: 300).
    skip_threshold_mm : float
        Screened displacement (mm) under which a frame counts as still, against the
        reference (identity) or against its anchor (shares its transform); 0 registers
        every frame but the reference.
    edge_slices : int
        Slices at each end of z left out of the metric (a fixed-image mask), because
        through-plane motion moves anatomy in and out of the slab there; 0 samples every
        slice (as the seed). Ignored when fewer than ``2 * edge_slices + 3`` slices.
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
    seed : int
        Elastix random seed (sample positions), for reproducible results.
    out : ndarray, shape (x, y, z, t), float32, optional
        Where to write the registered frames; may be ``frames`` itself (in place).

    Returns
    -------
    MotionResult

    Raises
    ------
    InputError
        Bad shapes, spacing, reference or level settings, or non-finite frames.
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
    schedule = _schedule(frames.shape[:3], spacing, levels, shrink, samples, iterations)
    edge_slices, times = _check_options(
        n_t, frames.shape[2], reference, edge_slices, times,
        skip_threshold_mm=skip_threshold_mm, flag_mm=flag_mm, flag_deg=flag_deg,
    )  # fmt: skip
    out = _output(frames, out)
    n_threads = _n_threads(threads)
    timings: dict[str, float] = {}
    center = (np.array(frames.shape[:3]) - 1) / 2 * np.array(spacing)

    t0 = time.perf_counter()
    screen_mm, source = plan(
        Screen(frames, spacing, center, n_threads), reference, skip_threshold_mm
    )
    todo = [int(k) for k in np.flatnonzero(source == np.arange(n_t))]
    timings["screen"] = time.perf_counter() - t0
    log.info(
        "motion screening: %d of %d frames moved more than %.2f mm (largest %.2f mm); "
        "%d need registration",
        int((source >= 0).sum()),
        n_t - 1,
        skip_threshold_mm,
        float(np.max(screen_mm, initial=0.0)),
        len(todo),
    )

    params = np.zeros((n_t, 6))  # rx, ry, rz (deg), tx, ty, tz (mm)
    pmap = _parameter_map(schedule, seed)
    if todo:
        params[todo] = _register(
            frames, spacing, reference, todo, pmap, center, n_threads, timings, edge_slices
        )
    shared = np.flatnonzero(source >= 0)
    params[shared] = params[source[shared]]
    t0 = time.perf_counter()
    _write_frames(frames, out, list(shared), params, spacing, center, fill_hu, n_threads)
    timings["resample"] = time.perf_counter() - t0

    rotations, translations = params[:, :3], params[:, 3:]
    flagged = _flag(translations, rotations, flag_mm, flag_deg, times)
    return MotionResult(
        frames=out,
        translations_mm=translations.copy(),
        rotations_deg=rotations.copy(),
        registered=np.isin(np.arange(n_t), todo),
        source=source,
        flagged=flagged,
        screen_mm=screen_mm,
        center_mm=center,
        reference=int(reference),
        times=times,
        flag_mm=float(flag_mm),
        flag_deg=float(flag_deg),
        parameters={
            "elastix": {k: list(v) for k, v in pmap.items()},
            "skip_threshold_mm": float(skip_threshold_mm),
            "edge_slices": int(edge_slices),
            "screen_voxel_mm": SCREEN_MM,
            "fill_hu": fill_hu,
        },
        timings=timings,
    )


def register_study(study: Study, **options: Any) -> tuple[Study, MotionResult]:
    """`register_frames` on a `Study`; returns a registered copy and the result.

    ``options`` are those of `register_frames` (``times`` is taken from the study).
    """
    from dataclasses import replace

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
        return frames.astype(np.float32, copy=True)
    if not isinstance(out, np.ndarray) or out.shape != frames.shape or out.dtype != np.float32:
        raise InputError("out", f"expected a float32 array of shape {frames.shape}")
    if out is not frames:
        out[...] = frames
    return out


def _schedule(shape, spacing, levels, shrink, samples, iterations):
    """Per-level (shrink per axis, samples, iterations), validated."""
    if not (isinstance(levels, (int, np.integer)) and levels >= 1):
        raise InputError("levels", f"expected a positive integer, got {levels!r}")
    iterations = (iterations,) * levels if np.isscalar(iterations) else tuple(iterations)
    for name, seq in (("shrink", shrink), ("samples", samples), ("iterations", iterations)):
        seq = tuple(seq)
        if len(seq) != levels or not all(isinstance(v, (int, np.integer)) and v >= 1 for v in seq):
            raise InputError(
                name, f"expected {levels} positive integers (one per level), got {seq}"
            )
    finest = min(spacing)
    schedule = []
    for lv in range(levels):
        factors = tuple(
            int(np.clip(round(shrink[lv] * finest / s), 1, max(1, n // 4)))
            for n, s in zip(shape, spacing, strict=True)
        )
        schedule.append((factors, int(samples[lv]), int(iterations[lv])))
    return schedule


def _parameter_map(schedule, seed: int) -> dict[str, tuple[str, ...]]:
    """The seed's elastix settings as a parameter map."""
    levels = len(schedule)
    pyramid = tuple(str(f) for factors, _, _ in schedule for f in factors)
    return {
        "Registration": ("MultiResolutionRegistration",),
        "Transform": ("EulerTransform",),
        "ComputeZYX": ("true",),
        "Metric": ("AdvancedMeanSquares",),
        "Optimizer": ("AdaptiveStochasticGradientDescent",),
        "AutomaticParameterEstimation": ("true",),
        "AutomaticScalesEstimation": ("true",),
        "AutomaticTransformInitialization": ("false",),
        "ImageSampler": ("RandomCoordinate",),
        "NewSamplesEveryIteration": ("true",),
        "NumberOfSpatialSamples": tuple(str(s) for _, s, _ in schedule),
        "MaximumNumberOfIterations": tuple(str(i) for _, _, i in schedule),
        "NumberOfResolutions": (str(levels),),
        "FixedImagePyramid": ("FixedRecursiveImagePyramid",),
        "MovingImagePyramid": ("MovingRecursiveImagePyramid",),
        "FixedImagePyramidSchedule": pyramid,
        "MovingImagePyramidSchedule": pyramid,
        "Interpolator": ("LinearInterpolator",),
        "FixedInternalImagePixelType": ("float",),
        "MovingInternalImagePixelType": ("float",),
        "WriteResultImage": ("false",),
        "ResampleInterpolator": ("FinalLinearInterpolator",),
        "Resampler": ("DefaultResampler",),
        "RandomSeed": (str(int(seed)),),
        "ErodeMask": ("false",),  # the mask only drops end slices; erosion would empty it
    }


def _register(frames, spacing, reference, todo, pmap, center, n_threads, timings, edge_slices):
    """Elastix on the frames in ``todo``; rows of (rx, ry, rz deg, tx, ty, tz mm).

    Runs in a child process (`ctpmaps.preprocess._elastix_worker`): itk's ~0.8 GB stays out
    of this process and is returned when the registrations are done.
    """
    fixed_zyx = np.ascontiguousarray(frames[..., reference].T, dtype=np.float32)
    mask_zyx = None
    if edge_slices:
        mask_zyx = np.zeros(fixed_zyx.shape, np.uint8)
        mask_zyx[edge_slices:-edge_slices] = 1
    workers = max(1, min(n_threads, len(todo)))
    setup = {
        "fixed": fixed_zyx,
        "mask": mask_zyx,
        "spacing": tuple(spacing),
        "pmap": {k: list(v) for k, v in pmap.items()},
        "workers": workers,
        "elastix_threads": max(1, n_threads // workers),
    }
    rows = {}
    t0 = time.perf_counter()
    with _ElastixProcess(setup) as child:
        timings["itk_load"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(0, len(todo), workers):  # a few frames at a time: bounded memory
            batch = [
                (k, np.ascontiguousarray(frames[..., k].T, dtype=np.float32))
                for k in todo[i : i + workers]
            ]
            for k, tmap in child.register(batch):
                rows[k] = _euler_to_params(tmap, center)
    timings["register"] = time.perf_counter() - t0
    log.info("elastix: %d frames on %d threads in %.1f s", len(todo), workers, timings["register"])
    return np.array([rows[k] for k in todo])


class _ElastixProcess:
    """The elastix child process: context manager sending requests, reading replies."""

    def __init__(self, setup: dict[str, Any]) -> None:
        self.setup = setup

    def __enter__(self) -> _ElastixProcess:
        self.stderr = tempfile.TemporaryFile()
        script = Path(__file__).with_name("_elastix_worker.py")
        self.proc = subprocess.Popen(
            [sys.executable, str(script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
        )
        self._ask(self.setup)
        return self

    def register(self, batch):
        return self._ask(batch)

    def _ask(self, message):
        try:
            pickle.dump(message, self.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self.proc.stdin.flush()
            status, payload = pickle.load(self.proc.stdout)
        except (BrokenPipeError, EOFError, pickle.UnpicklingError) as exc:
            raise CtpmapsError(f"elastix process died: {self._tail()}") from exc
        if status == "error":
            raise CtpmapsError(f"elastix failed: {payload}")
        return payload

    def _tail(self) -> str:
        self.proc.wait(timeout=10)
        self.stderr.seek(0)
        text = self.stderr.read().decode(errors="replace").strip().splitlines()
        return f"exit code {self.proc.returncode}; " + " | ".join(text[-5:])

    def __exit__(self, *exc_info) -> None:
        try:
            if self.proc.poll() is None:
                pickle.dump(None, self.proc.stdin)
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
        except (BrokenPipeError, subprocess.TimeoutExpired, OSError):
            self.proc.kill()
            self.proc.wait()
        finally:
            self.stderr.close()


def _euler_to_params(tmap, center) -> np.ndarray:
    """Elastix EulerTransform parameters -> (rx, ry, rz deg, tx, ty, tz mm) about ``center``."""
    values = np.array([float(v) for v in tmap["TransformParameters"]])
    angles, t = values[:3], values[3:]
    c_elx = np.array([float(v) for v in tmap["CenterOfRotationPoint"]])
    zyx = tmap.get("ComputeZYX", ("false",))[0] == "true"
    if not zyx:  # itk's default order: R = Rz Rx Ry
        rot = Rotation.from_euler("yxz", angles[[1, 0, 2]]).as_matrix()
        angles = Rotation.from_matrix(rot).as_euler("xyz")
    rot = Rotation.from_euler("xyz", angles).as_matrix()
    t = t + (np.eye(3) - rot) @ (c_elx - center)  # same transform, about our centre
    return np.r_[np.degrees(angles), t]


def _write_frames(frames, out, todo, params, spacing, center, fill_hu, n_threads):
    def one(k: int) -> None:
        m = rigid_matrix(params[k, :3], params[k, 3:], center)
        out[..., k] = resample_rigid(frames[..., k], spacing, m, fill_hu=fill_hu)

    if n_threads == 1 or len(todo) < 2:
        for k in todo:
            one(k)
    else:
        with ThreadPoolExecutor(max_workers=n_threads) as pool:
            list(pool.map(one, todo))

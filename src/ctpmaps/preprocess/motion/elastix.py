"""The seed's registration: elastix (itk-elastix) in a child process, one frame at a time.

The seed registered every frame to the first (elastix 5.0.1): Euler (rigid) transform, sum
of squared differences, stochastic gradient descent, two resolutions (8x down-sampled, then
full) with 2,000 and 8,000 random samples and 300 iterations each. `fit_frames` runs that
protocol with the physical spacing set on the images, so translations are in mm and
rotations about the volume centre.

Down-sampling along thick slices: the seed's 8x is in-plane. Along an axis with coarser
voxels the factor is reduced so that the coarse voxel has about the same size in mm as the
in-plane one (0.49 mm x 8 = 3.9 mm; 5 mm slices are already coarser and keep factor 1), and
no axis is shrunk below 4 voxels.

Edge slices are left out of the metric with a fixed-image mask.

Speed and memory: elastix runs in one child process (`_elastix_worker`) on a pool of
threads (one frame per thread, one elastix thread each; itk releases the GIL), each thread
keeping its fixed image, mask and parameter object for all its frames. Loading itk takes
about 12 s and makes a process about 0.8-1 GB larger; the child starts loading it before
the frames are screened (`ElastixProcess.start`), and its memory is returned when the
registrations end instead of staying through the filter and the perfusion fit.
"""

from __future__ import annotations

import logging
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from ...errors import CtpmapsError, InputError
from .geometry import rigid_matrix

__all__ = ["SEED_OPTIONS", "ElastixProcess", "schedule", "parameter_map", "fit_frames"]

log = logging.getLogger(__name__)

#: The seed's pyramid: resolutions, in-plane shrink per level, samples and iterations.
SEED_OPTIONS = {"levels": 2, "shrink": (8, 1), "samples": (2000, 8000), "iterations": 300}


def schedule(shape, spacing, levels, shrink, samples, iterations):
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
    plan = []
    for lv in range(levels):
        factors = tuple(
            int(np.clip(round(shrink[lv] * finest / s), 1, max(1, n // 4)))
            for n, s in zip(shape, spacing, strict=True)
        )
        plan.append((factors, int(samples[lv]), int(iterations[lv])))
    return plan


def parameter_map(levels_plan, seed: int) -> dict[str, tuple[str, ...]]:
    """The seed's elastix settings as a parameter map."""
    pyramid = tuple(str(f) for factors, _, _ in levels_plan for f in factors)
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
        "NumberOfSpatialSamples": tuple(str(s) for _, s, _ in levels_plan),
        "MaximumNumberOfIterations": tuple(str(i) for _, _, i in levels_plan),
        "NumberOfResolutions": (str(len(levels_plan)),),
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


def fit_frames(child, frames, spacing, reference, todo, pmap, center, n_threads, timings, edge):
    """Elastix on the frames in ``todo`` in the started ``child``; (len(todo), 4, 4) mm."""
    fixed_zyx = np.ascontiguousarray(frames[..., reference].T, dtype=np.float32)
    mask_zyx = None
    if edge:
        mask_zyx = np.zeros(fixed_zyx.shape, np.uint8)
        mask_zyx[edge:-edge] = 1
    workers = max(1, min(n_threads, len(todo)))
    setup = {
        "fixed": fixed_zyx,
        "mask": mask_zyx,
        "spacing": tuple(spacing),
        "pmap": {k: list(v) for k, v in pmap.items()},
        "workers": workers,
        "elastix_threads": max(1, n_threads // workers),
    }
    t0 = time.perf_counter()
    child.setup(setup)
    timings["itk_load"] = time.perf_counter() - t0  # what was left of it after screening
    t0 = time.perf_counter()
    rows = {}
    for i in range(0, len(todo), workers):  # a few frames at a time: bounded memory
        batch = [
            (k, np.ascontiguousarray(frames[..., k].T, dtype=np.float32))
            for k in todo[i : i + workers]
        ]
        for k, tmap in child.register(batch):
            rows[k] = _euler_to_matrix(tmap, center)
    timings["register"] = time.perf_counter() - t0
    log.info("elastix: %d frames on %d threads in %.1f s", len(todo), workers, timings["register"])
    return np.array([rows[k] for k in todo])


class ElastixProcess:
    """The elastix child process: started early (it loads itk at once), then a context
    manager sending requests and reading replies; `close` ends it, used or not."""

    def start(self) -> ElastixProcess:
        self.ready = False
        self.stderr = tempfile.TemporaryFile()
        script = Path(__file__).with_name("_elastix_worker.py")
        self.proc = subprocess.Popen(
            [sys.executable, str(script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
        )
        return self

    def __enter__(self) -> ElastixProcess:
        return self

    def setup(self, setup: dict[str, Any]) -> None:
        self._ask(setup)
        self.ready = True

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

    def close(self) -> None:
        try:
            if not self.ready:  # never used: no need to wait for itk to finish loading
                self.proc.kill()
                self.proc.wait()
            elif self.proc.poll() is None:
                pickle.dump(None, self.proc.stdin)
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
        except (BrokenPipeError, subprocess.TimeoutExpired, OSError):
            self.proc.kill()
            self.proc.wait()
        finally:
            self.stderr.close()

    def __exit__(self, *exc_info) -> None:
        self.close()


def _euler_to_matrix(tmap, center) -> np.ndarray:
    """Elastix EulerTransform parameters -> our (4, 4) transform in mm (about ``center``)."""
    values = np.array([float(v) for v in tmap["TransformParameters"]])
    angles, t = values[:3], values[3:]
    c_elx = np.array([float(v) for v in tmap["CenterOfRotationPoint"]])
    zyx = tmap.get("ComputeZYX", ("false",))[0] == "true"
    if not zyx:  # itk's default order: R = Rz Rx Ry
        rot = Rotation.from_euler("yxz", angles[[1, 0, 2]]).as_matrix()
        angles = Rotation.from_matrix(rot).as_euler("xyz")
    rot = Rotation.from_euler("xyz", angles).as_matrix()
    t = t + (np.eye(3) - rot) @ (c_elx - center)  # same transform, about our centre
    return rigid_matrix(np.degrees(angles), t, center)

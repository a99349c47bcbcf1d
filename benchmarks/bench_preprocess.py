"""Benchmark: motion correction and guided bilateral filter on a 512 x 512 x 8 x 89 study.

Targets (issue 4, 2 cores): motion correction under 60 s with motion on a few frames, filter
under 20 s, peak memory under 4 GB.

The study is a phantom patient (`ctpmaps.phantom.simulate_patient`, no motion of its own;
a synthetic head with noise if the phantom is unavailable). The preprocessing runs in a
fresh child process, so its peak memory (``ru_maxrss``) and the one-time loading of torch
(the default registration; itk for ``method="elastix-seed"``) are measured on their own.
A fully moving study, and the seed's elastix settings side by side: ``bench_motion.py``.
In the child:

1. the still study goes through `register_frames` (screening only: nothing to register);
2. rigid motions (up to 3 mm, 3 degrees) are applied to 8 frames in 3 poses (frames 30-33,
   55, 70-72: a head that moves and stays a few frames), then `register_frames` again;
3. `guided_bilateral_filter` on the registered frames, in place, with the default settings
   (peak memory read here), then on the same registered frames with the seed's settings.

Wall times depend on what else runs on the machine: the table also gives CPU seconds
(this process and any elastix child) and the load average around the run.

Run: ``python benchmarks/bench_preprocess.py``. Prints machine, date, load and a table.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TARGETS = {"motion_s": 60.0, "filter_s": 20.0, "peak_gb": 4.0}
# frames -> (rx, ry, rz deg, tx, ty, tz mm)
POSES = {
    (30, 31, 32, 33): (1.0, -2.0, 3.0, 2.5, -1.5, 1.0),
    (55,): (-3.0, 1.0, 0.5, -1.0, 3.0, -0.5),
    (70, 71, 72): (2.0, 2.0, -2.0, 0.5, 1.0, 2.0),
}


def make_study() -> tuple[np.ndarray, tuple[float, float, float], str]:
    """Frames (x, y, z, t) float32 and spacing; the phantom when it can be imported."""
    try:
        from ctpmaps.phantom import PhantomConfig, simulate_patient
    except ImportError:
        return synthetic_study() + ("synthetic head (ctpmaps.phantom unavailable)",)
    ph = simulate_patient(PhantomConfig(), seed=1, normal=False)
    return ph.study.frames, ph.study.spacing, "phantom patient (seed 1, stroke)"


def synthetic_study(seed: int = 0):
    """Ellipsoid head (scalp, skull, CSF, grey/white matter) with 15 HU noise."""
    shape, spacing = (512, 512, 8), (0.49, 0.49, 5.0)
    rng = np.random.default_rng(seed)
    axes = [(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing, strict=True)]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    depth = (1 - np.sqrt((x / 80) ** 2 + (y / 95) ** 2 + ((z - 20) / 110) ** 2)) * 85
    head = np.full(shape, -1000.0, np.float32)
    head[depth > 0] = 40
    head[depth > 5] = 1200
    head[depth > 12] = 8
    head[depth > 14] = np.where(np.sin(x[depth > 14] / 6) * np.cos(y[depth > 14] / 7) > 0.3, 30, 40)
    frames = np.empty((*shape, 89), np.float32)
    for k in range(89):
        frames[..., k] = head + rng.normal(0, 15, shape).astype(np.float32)
    return frames, spacing


def child(path: str, spacing: tuple[float, float, float]) -> dict:
    """Everything measured, in a fresh process."""
    clock = {}
    t = time.perf_counter()
    from ctpmaps.preprocess import (
        SEED_SIGMAS,
        SIGMA_RANGE_HU,
        SIGMA_SPATIAL_MM,
        guided_bilateral_filter,
        register_frames,
        resample_rigid,
        rigid_matrix,
    )

    clock["import_s"] = time.perf_counter() - t
    clock["sigmas"] = (SIGMA_SPATIAL_MM, SIGMA_RANGE_HU)
    frames = np.load(path)
    center = (np.array(frames.shape[:3]) - 1) / 2 * np.array(spacing)

    def cpu() -> float:  # this process and any elastix child process it waited for
        own, kids = (
            resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
        )
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    def timed(fn, *args, **kwargs):
        t0, c0 = time.perf_counter(), cpu()
        out = fn(*args, **kwargs)
        return out, time.perf_counter() - t0, cpu() - c0

    still, clock["still_s"], clock["still_cpu_s"] = timed(
        register_frames, frames, spacing, out=frames
    )
    clock["still_registered"] = int(still.registered.sum())
    del still
    truth = np.zeros((frames.shape[3], 6))
    for ks, pose in POSES.items():
        to_frame = rigid_matrix(pose[:3], pose[3:], center)  # reference -> frame
        for k in ks:
            truth[k] = pose
            frames[..., k] = resample_rigid(frames[..., k], spacing, np.linalg.inv(to_frame))
    moved, clock["motion_s"], clock["motion_cpu_s"] = timed(
        register_frames, frames, spacing, out=frames
    )
    clock["motion_parts_s"] = moved.timings
    clock["motion_registered"] = int(moved.registered.sum())
    clock["motion_shared"] = int(((moved.source >= 0) & ~moved.registered).sum())
    clock["motion_false_moves"] = int(((moved.source >= 0) & ~np.any(truth != 0, axis=1)).sum())
    k = np.flatnonzero(np.any(truth != 0, axis=1))
    clock["rms_mm"] = float(np.sqrt(np.mean((moved.translations_mm[k] - truth[k, 3:]) ** 2)))
    clock["rms_deg"] = float(np.sqrt(np.mean((moved.rotations_deg[k] - truth[k, :3]) ** 2)))
    del moved
    registered = path + ".registered.npy"
    np.save(registered, frames)
    _, clock["filter_s"], clock["filter_cpu_s"] = timed(
        guided_bilateral_filter, frames, spacing, out=frames
    )
    clock["peak_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    frames[...] = np.load(registered)  # the same registered frames, the seed's settings
    spatial, range_hu = SEED_SIGMAS
    _, clock["filter_seed_s"], clock["filter_seed_cpu_s"] = timed(
        guided_bilateral_filter,
        frames,
        spacing,
        sigma_spatial_mm=spatial,
        sigma_range_hu=range_hu,
        out=frames,
    )
    clock["elastix_peak_gb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6
    return clock


def main() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
         if ln.startswith("model name")),
        platform.processor(),
    ) if Path("/proc/cpuinfo").exists() else platform.processor()  # fmt: skip
    print(
        f"# bench_preprocess  {datetime.datetime.now():%Y-%m-%d %H:%M}  {platform.platform()}"
        f"  {cpu}  {cores} cores  python {platform.python_version()}"
    )
    t = time.perf_counter()
    frames, spacing, what = make_study()
    print(f"study: {what}, {frames.shape} {frames.dtype}, built in {time.perf_counter() - t:.1f} s")
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "frames.npy"
        np.save(path, frames)
        del frames
        proc = subprocess.run(
            [sys.executable, __file__, "--child", str(path), *map(str, spacing)],
            capture_output=True,
            text=True,
        )
    if proc.returncode != 0:
        print(proc.stderr[-3000:])
        return 2
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    parts = r["motion_parts_s"]
    load1 = os.getloadavg()[0]
    print(f"load average (1 min) before / after: {load0:.2f} / {load1:.2f}")
    rows = [
        ("import ctpmaps.preprocess", r["import_s"], None, ""),
        ("motion, still study (screening only)", r["still_s"], r["still_cpu_s"],
         f"{r['still_registered']} frames registered"),
        ("motion, 8 frames moved (3 poses)", r["motion_s"], r["motion_cpu_s"],
         f"target < {TARGETS['motion_s']:.0f} s"),
        ("  screening", parts.get("screen", 0.0), None, ""),
        ("  torch (or itk) load, once per process",
         parts.get("torch_load", parts.get("itk_load", 0.0)), None, ""),
        ("  registration", parts.get("register", 0.0), None,
         f"{r['motion_registered']} registered, {r['motion_shared']} shared, "
         f"{r['motion_false_moves']} still frames sent on"),
        ("  resampling", parts.get("resample", 0.0), None, ""),
        (f"guided bilateral filter ({r['sigmas'][0]:g} mm, {r['sigmas'][1]:g} HU)",
         r["filter_s"], r["filter_cpu_s"], f"target < {TARGETS['filter_s']:.0f} s"),
        ("  same frames, the seed's 3 mm / 20 HU", r["filter_seed_s"], r["filter_seed_cpu_s"],
         f"default / seed: {r['filter_s'] / r['filter_seed_s']:.2f}x"),
    ]  # fmt: skip
    print(f"{'step':46s} {'wall s':>8s} {'cpu s':>8s}  note")
    for name, wall, cpu_s, note in rows:
        cpu_txt = f"{cpu_s:8.1f}" if cpu_s is not None else f"{'':8s}"
        print(f"{name:46s} {wall:8.1f} {cpu_txt}  {note}")
    print(f"motion accuracy on the moved frames: RMS {r['rms_mm']:.3f} mm, {r['rms_deg']:.3f} deg")
    print(f"peak memory: {r['peak_gb']:.2f} GB in the process holding the study "
          f"(target < {TARGETS['peak_gb']:.0f} GB); {r['elastix_peak_gb']:.2f} GB in child "
          "processes (elastix, with method='elastix-seed' only)")  # fmt: skip
    ok = (
        r["motion_s"] < TARGETS["motion_s"]
        and r["filter_s"] < TARGETS["filter_s"]
        and r["peak_gb"] < TARGETS["peak_gb"]
    )
    print("targets met" if ok else "target missed")
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        result = child(sys.argv[2], tuple(float(v) for v in sys.argv[3:6]))
        print(json.dumps(result))
        sys.exit(0)
    sys.exit(main())

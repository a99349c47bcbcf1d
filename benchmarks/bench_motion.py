"""Benchmark: motion correction of a fully moving and of a still 512 x 512 x 8 x 89 study.

Target (issue 15, a quiet 2-core machine): a study whose every frame moved (up to 2 mm /
2 degrees, a smooth random walk) corrected in under 60 s, with the residual displacement of
the brain against the known motion at most 0.2 mm (median) and 0.4 mm (95th percentile).

The studies: a phantom patient without motion of its own (`ctpmaps.phantom.simulate_patient`
with ``PhantomConfig()``, seed 1) is the still study. The moving study applies a known rigid
transform to every frame but the first (a smooth random walk, each parameter reaching a
random 50-100 % of 2 mm or 2 degrees) to the phantom's noise-free frames with
`ctpmaps.preprocess.resample_rigid`, then adds the same frames' CT noise back: the noise is
not moved with the head, as in a scanner.

Each method (`ctpmaps.preprocess.motion.METHODS`: the default ``gauss-newton`` and the
seed's ``elastix-seed``) runs on each study in a fresh child process, so that loading
torch or itk is timed as a user would meet it. Per run: wall time of `register_frames`
and of each stage (screening, loading torch / the part of itk's load not hidden behind the
screening, registration, resampling), CPU seconds, peak memory, and on the moving study the
residual displacement over the brain (every 5th brain voxel, every frame but the reference)
against the known motion, beside the uncorrected motion as a baseline. Peak memory is that
of the process holding the study (the elastix child, about 1 GB, lives only while it
registers).

The machine is shared: run it with ``nice``; the load average is printed before and after,
and the ratios (seed / default) hold better than absolute times on a busy machine.

Run: ``python benchmarks/bench_motion.py [--matrix 512] [--frames 89] [--methods ...]``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import machine

TARGET_S = 60.0
TARGET_MEDIAN_MM = 0.2
TARGET_P95_MM = 0.4


def random_walk(n: int, rng: np.random.Generator, *, mm: float = 2.0, deg: float = 2.0):
    """(n, 6) rotations (deg) and translations (mm) of a smooth random walk from 0."""
    from scipy import ndimage

    walk = ndimage.gaussian_filter1d(np.cumsum(rng.standard_normal((n, 6)), axis=0), 2.0, axis=0)
    walk -= walk[0]
    limit = np.r_[[deg] * 3, [mm] * 3] * rng.uniform(0.5, 1.0, 6)
    return walk / np.abs(walk).max(axis=0) * limit


def make_studies(matrix: int, n_frames: int, folder: Path) -> dict:
    """Write still.npy, moving.npy and truth.npz into ``folder``; returns a description."""
    from ctpmaps.phantom import PhantomConfig, acquisition_preset, simulate_patient

    cfg = PhantomConfig(acquisition=acquisition_preset("seed", matrix=matrix, n_frames=n_frames))
    ph = simulate_patient(cfg, seed=1, normal=False, keep_noise_free=True)
    frames, spacing = ph.study.frames, ph.study.spacing
    np.save(folder / "still.npy", frames)
    truth = move_every_frame(ph, np.random.default_rng(7))
    np.save(folder / "moving.npy", frames)
    brain = brain_points_mm(ph)
    np.savez(folder / "truth.npz", truth=truth, brain_mm=brain, spacing=spacing)
    return {"shape": list(frames.shape), "spacing": list(spacing), "brain_points": len(brain)}


def move_every_frame(ph, rng: np.random.Generator) -> np.ndarray:
    """Move every frame of a phantom patient (simulated with ``keep_noise_free=True``) in
    place by a smooth random walk (`random_walk`): the noise-free frame is moved, its noise
    added back unmoved. Returns the walk, (t, 6) rotations (deg) and translations (mm)."""
    from ctpmaps.preprocess import resample_rigid, rigid_matrix

    frames, clean, spacing = ph.study.frames, ph.truth.noise_free, ph.study.spacing
    truth = random_walk(frames.shape[3], rng)
    center = (np.array(frames.shape[:3]) - 1) / 2 * np.array(spacing)
    for k in range(frames.shape[3]):
        noise = frames[..., k] - clean[..., k]
        to_frame = rigid_matrix(truth[k, :3], truth[k, 3:], center)
        frames[..., k] = resample_rigid(clean[..., k], spacing, np.linalg.inv(to_frame)) + noise
    return truth


def brain_points_mm(ph) -> np.ndarray:
    """Every 5th voxel of the phantom's brain, (n, 3) mm from voxel (0, 0, 0)."""
    return np.argwhere(ph.truth.masks["brain"])[::5] * np.array(ph.study.spacing)


def residual_mm(matrices: np.ndarray, truth: np.ndarray, points_mm: np.ndarray, center):
    """Distances (mm) between where the found and the true transforms put each point, over
    all frames but the first (the reference)."""
    from ctpmaps.preprocess import rigid_matrix

    homogeneous = np.c_[points_mm, np.ones(len(points_mm))]
    out = []
    for m, p in zip(matrices[1:], truth[1:], strict=True):  # frame 0 is the reference
        diff = homogeneous @ (m - rigid_matrix(p[:3], p[3:], center)).T
        out.append(np.linalg.norm(diff[:, :3], axis=1))
    return np.concatenate(out)


def child(path: str, method: str, spacing: tuple[float, float, float]) -> dict:
    """One `register_frames` in a fresh process: times, CPU, memory and the transforms."""
    t = time.perf_counter()
    from ctpmaps.preprocess import register_frames

    out = {"import_s": time.perf_counter() - t}
    frames = np.load(path)

    def cpu() -> float:
        own, kids = (
            resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
        )
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    t0, c0 = time.perf_counter(), cpu()
    result = register_frames(frames, spacing, method=method, out=frames)
    out["wall_s"], out["cpu_s"] = time.perf_counter() - t0, cpu() - c0
    out["parts_s"] = result.timings
    out["registered"] = int(result.registered.sum())
    out["matrices"] = result.matrices.tolist()
    out["center_mm"] = result.center_mm.tolist()
    out["peak_gb"] = _peak_gb()
    return out


def _peak_gb() -> float:
    """This process's peak resident memory since it started (VmHWM; ``ru_maxrss`` would
    also count what the parent held when it forked)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1e6  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def run_child(path: Path, method: str, spacing) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", str(path), method, *map(str, spacing)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{method} on {path.name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def table(runs: dict, accuracy: dict, methods: list[str]) -> list[str]:
    """Markdown rows: one per study and method, then the seed / default ratios."""
    head = ("| study | method | wall s | CPU s | screen | torch / itk load | register | "
            "resample | registered | residual median / p95 mm | peak GB |")  # fmt: skip
    rows = [head, "|" + "---|" * 11]
    for study in ("moving", "still"):
        for method in methods:
            r = runs[(study, method)]
            parts = r["parts_s"]
            load = parts.get("torch_load", parts.get("itk_load", 0.0))
            acc = accuracy.get((study, method))
            acc_txt = f"{acc[0]:.3f} / {acc[1]:.3f}" if acc else "-"
            peak = r["peak_gb"]
            rows.append(
                f"| {study} | {method} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | "
                f"{parts.get('screen', 0):.1f} | {load:.1f} | {parts.get('register', 0):.1f} | "
                f"{parts.get('resample', 0):.1f} | {r['registered']} | {acc_txt} | {peak:.2f} |"
            )
    if len(methods) == 2:
        for study in ("moving", "still"):
            a, b = (runs[(study, m)]["wall_s"] for m in methods)
            rows.append(f"\n{study}: {methods[1]} / {methods[0]} wall time {b / a:.1f}x")
    return rows


def main(argv: list[str] | None = None) -> int:
    from ctpmaps.preprocess.motion import METHODS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matrix", type=int, default=512)
    parser.add_argument("--frames", type=int, default=89)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    args = parser.parse_args(argv)
    print(f"# bench_motion  {datetime.datetime.now():%Y-%m-%d %H:%M}  {machine()}")
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t = time.perf_counter()
        what = make_studies(args.matrix, args.frames, folder)
        print(f"studies {what['shape']} at {what['spacing']} mm built in "
              f"{time.perf_counter() - t:.0f} s")  # fmt: skip
        known = np.load(folder / "truth.npz")
        spacing = tuple(float(s) for s in known["spacing"])
        runs, accuracy = {}, {}
        for study in ("moving", "still"):
            for method in args.methods:
                runs[(study, method)] = r = run_child(folder / f"{study}.npy", method, spacing)
                if study == "moving":
                    d = residual_mm(np.array(r["matrices"]), known["truth"], known["brain_mm"],
                                    np.array(r["center_mm"]))  # fmt: skip
                    accuracy[(study, method)] = (np.median(d), np.percentile(d, 95))
        center = np.array(runs[("moving", args.methods[0])]["center_mm"])
        still = np.repeat(np.eye(4)[None], len(known["truth"]), axis=0)
        before = residual_mm(still, known["truth"], known["brain_mm"], center)
    load1 = os.getloadavg()
    print(f"load average (1, 5, 15 min) before: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}; "
          f"after: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")  # fmt: skip
    print(f"uncorrected motion of the brain: median {np.median(before):.2f} mm, "
          f"p95 {np.percentile(before, 95):.2f} mm, max {before.max():.2f} mm")  # fmt: skip
    print("\n".join(table(runs, accuracy, args.methods)))
    default = args.methods[0]
    r, acc = runs[("moving", default)], accuracy[("moving", default)]
    ok = r["wall_s"] < TARGET_S and acc[0] <= TARGET_MEDIAN_MM and acc[1] <= TARGET_P95_MM
    print(f"\n{default} on the moving study: {r['wall_s']:.1f} s (target < {TARGET_S:.0f} s), "
          f"median {acc[0]:.3f} mm (<= {TARGET_MEDIAN_MM}), p95 {acc[1]:.3f} mm "
          f"(<= {TARGET_P95_MM}): {'met' if ok else 'missed'}")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "--child":
        spacing = tuple(float(v) for v in sys.argv[4:7])
        print(json.dumps(child(sys.argv[2], sys.argv[3], spacing)))
        sys.exit(0)
    sys.exit(main())

"""Benchmark: ``ctpmaps run`` end to end on a still and on a fully moving 512 x 512 x 8 x 89
study, with the default registration and the seed's elastix settings side by side.

Targets (issue 15, a quiet 2-core machine): a still study under 30 s and a fully moving one
under 60 s end to end, peak memory under 3.5 GB; on the moving study the residual
displacement of the brain against the known motion at most 0.2 mm (median) and 0.4 mm
(95th percentile).

The studies: one phantom patient (seed 7, stroke) written as NIfTI is the still study; the
same patient with every frame moved by a smooth random walk (up to 2 mm / 2 degrees, noise
not moved with the head: `bench_motion.move_every_frame`) is the moving one. Each study
goes through ``ctpmaps run`` (default chain: NLR, filter 2 mm / 3 HU, DICOM, report) in a
child process, once per ``--motion-method``, in turn within this one run; the ratios
(elastix-seed / gauss-newton) per stage hold better than absolute times on a shared machine.
Per run: wall time with start-up, time per stage from ``run.json``, peak resident memory of
the child (``wait4``), the load average before and after, and on the moving study the
residual displacement over every 5th brain voxel of every frame but the first, computed
from the transforms in ``motion.csv`` (`bench_motion.residual_mm`), beside the uncorrected
motion as a baseline.

Run: ``python benchmarks/bench_run.py [--matrix 512] [--methods gauss-newton elastix-seed]``.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import load, machine, run_child
from bench_motion import brain_points_mm, move_every_frame, residual_mm

TARGETS_S = {"still": 30.0, "moving": 60.0}
TARGET_GB = 3.5
TARGET_MEDIAN_MM, TARGET_P95_MM = 0.2, 0.4
STAGES = ("load", "motion", "filter", "maps", "lesions", "nifti", "dicom", "report")


def make_studies(matrix: int, n_frames: int, folder: Path) -> dict:
    """Write ``still.nii.gz`` and ``moving.nii.gz``; the known motion and brain points."""
    from ctpmaps.io.nifti import write_nifti_study
    from ctpmaps.phantom import PhantomConfig, acquisition_preset, simulate_patient

    cfg = PhantomConfig(acquisition=acquisition_preset("seed", matrix=matrix, n_frames=n_frames))
    ph = simulate_patient(cfg, seed=7, normal=False, patient_id="BENCH-001", keep_noise_free=True)
    write_nifti_study(ph.study, folder / "still.nii.gz")
    truth = move_every_frame(ph, np.random.default_rng(7))
    write_nifti_study(ph.study, folder / "moving.nii.gz")
    shape, spacing = ph.study.frames.shape, ph.study.spacing
    return {"truth": truth, "brain_mm": brain_points_mm(ph), "shape": shape, "spacing": spacing}


def motion_matrices(folder: Path, center: np.ndarray) -> np.ndarray:
    """(t, 4, 4) transforms from a run's ``motion.csv``."""
    from ctpmaps.preprocess import rigid_matrix

    with open(folder / "motion.csv") as fh:
        rows = list(csv.DictReader(fh))
    rot = [[float(r[f"r{a}_deg"]) for a in "xyz"] for r in rows]
    tra = [[float(r[f"t{a}_mm"]) for a in "xyz"] for r in rows]
    return np.array([rigid_matrix(r, t, center) for r, t in zip(rot, tra, strict=True)])


def one_run(study: Path, out: Path, motion_method: str, method: str) -> dict:
    cmd = [sys.executable, "-m", "ctpmaps", "run", str(study), str(out),
           "--method", method, "--motion-method", motion_method]  # fmt: skip
    r = run_child(cmd)
    if r["code"] != 0:  # recorded and shown: the other runs go on
        r["error"] = (r["stderr"].strip().splitlines() or ["no message"])[-1]
        r["timings_s"] = {}
        return r
    r["timings_s"] = json.loads((out / "run.json").read_text())["timings_s"]
    return r


def table(runs: dict, accuracy: dict, methods: list[str]) -> list[str]:
    """Markdown: one row per study and method, then the ratios to the first method."""
    head = ["study", "motion method", *STAGES, "total", "with start-up", "peak GB",
            "residual median / p95 mm", "load before -> after"]  # fmt: skip
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (study, method), r in runs.items():
        t = r["timings_s"]
        acc = accuracy.get((study, method))
        if "error" in r:
            failed = f"failed (exit {r['code']} after {r['wall_s']:.1f} s): {r['error']}"
            rows.append(f"| {study} | {method} | {failed} |")
            continue
        cells = [study, method, *(f"{t.get(s, 0.0):.1f}" for s in STAGES),
                 f"{t['total']:.1f}", f"{r['wall_s']:.1f}", f"{r['peak_gb']:.2f}",
                 f"{acc[0]:.3f} / {acc[1]:.3f}" if acc else "-", r["load"]]  # fmt: skip
        rows.append("| " + " | ".join(cells) + " |")
    if len(methods) > 1:
        rows += ["", f"ratios {methods[1]} / {methods[0]} (same run):", ""]
        rows += ["| study | " + " | ".join((*STAGES, "total", "with start-up")) + " |",
                 "|" + "---|" * (len(STAGES) + 3)]  # fmt: skip
        for study in dict.fromkeys(s for s, _ in runs):
            a, b = runs.get((study, methods[0])), runs.get((study, methods[1]))
            if a is None or b is None or "error" in a or "error" in b:
                continue
            ta, tb = a["timings_s"], b["timings_s"]
            ratio = [tb.get(s, 0.0) / ta[s] if ta.get(s) else float("nan") for s in STAGES]
            ratio += [tb["total"] / ta["total"], b["wall_s"] / a["wall_s"]]
            rows.append(f"| {study} | " + " | ".join(f"{v:.2f}" for v in ratio) + " |")
    return rows


def verdicts(runs: dict, accuracy: dict, method: str) -> tuple[list[str], bool]:
    lines, ok = [], True
    for study, target in TARGETS_S.items():
        r = runs.get((study, method))
        if r is None:
            continue
        met = "error" not in r and r["wall_s"] < target and r["peak_gb"] < TARGET_GB
        ok &= met
        lines.append(f"{study} ({method}): {r['wall_s']:.1f} s with start-up (target < "
                     f"{target:g} s), peak {r['peak_gb']:.2f} GB (< {TARGET_GB:g} GB): "
                     f"{'met' if met else 'missed'}")  # fmt: skip
    acc = accuracy.get(("moving", method))
    if acc is not None:
        met = acc[0] <= TARGET_MEDIAN_MM and acc[1] <= TARGET_P95_MM
        ok &= met
        verdict = "met" if met else "missed"
        lines.append(f"motion accuracy ({method}): median {acc[0]:.3f} mm "
                     f"(<= {TARGET_MEDIAN_MM}), p95 {acc[1]:.3f} mm "
                     f"(<= {TARGET_P95_MM}): {verdict}")  # fmt: skip
    return lines, ok


def main(argv: list[str] | None = None) -> int:
    from ctpmaps.preprocess.motion import METHODS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--matrix", type=int, default=512)
    ap.add_argument("--frames", type=int, default=89)
    ap.add_argument("--method", default="nlr", help="perfusion method of ctpmaps run")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS,
                    help="motion methods, the first one the reference of the ratios")  # fmt: skip
    ap.add_argument("--studies", nargs="+", default=["still", "moving"],
                    choices=["still", "moving"])  # fmt: skip
    args = ap.parse_args(argv)
    print(f"# bench_run  {datetime.datetime.now():%Y-%m-%d %H:%M}  {machine()}")
    print(f"load average at the start: {load()}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t = time.perf_counter()
        known = make_studies(args.matrix, args.frames, folder)
        spacing = np.round(known["spacing"], 3).tolist()
        print(f"studies {known['shape']} at {spacing} mm simulated and written (NIfTI) in "
              f"{time.perf_counter() - t:.0f} s", flush=True)  # fmt: skip
        center = (np.array(known["shape"][:3]) - 1) / 2 * np.array(known["spacing"])
        runs, accuracy = {}, {}
        for study in args.studies:
            for method in args.methods:
                out = folder / f"{study}-{method}"
                runs[(study, method)] = r = one_run(
                    folder / f"{study}.nii.gz", out, method, args.method
                )
                print(f"  {study} / {method}: {r['wall_s']:.1f} s (load {r['load']})"
                      + (f" FAILED: {r['error']}" if "error" in r else ""), flush=True)  # fmt: skip
                if study == "moving" and (out / "motion.csv").exists():
                    d = residual_mm(motion_matrices(out, center), known["truth"],
                                    known["brain_mm"], center)  # fmt: skip
                    accuracy[(study, method)] = (np.median(d), np.percentile(d, 95))
        still = np.repeat(np.eye(4)[None], len(known["truth"]), axis=0)
        before = residual_mm(still, known["truth"], known["brain_mm"], center)
    print(f"command: ctpmaps run STUDY.nii.gz OUT --method {args.method} --motion-method M")
    print(f"uncorrected motion of the brain (moving study): median {np.median(before):.2f} mm, "
          f"p95 {np.percentile(before, 95):.2f} mm")  # fmt: skip
    print("time per stage (s), from run.json:")
    print("\n".join(table(runs, accuracy, args.methods)))
    lines, ok = verdicts(runs, accuracy, args.methods[0])
    print("\n" + "\n".join(lines))
    print(f"load average at the end: {load()}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

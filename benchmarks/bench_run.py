"""Benchmark: ``ctpmaps run`` end to end on a full-size phantom study (512 x 512 x 8 x 89).

Targets (issue 5, 2 cores): under 90 s end to end, peak memory under 4 GB.

The phantom is simulated and written (NIfTI, or DICOM with ``--input dicom``) by this
process; ``ctpmaps run`` then runs as a child process, so its wall time includes Python
start-up and imports, and its peak memory (``getrusage(RUSAGE_CHILDREN).ru_maxrss``) is
the run's alone. Time per stage comes from the run's ``run.json``.

Run: ``python benchmarks/bench_run.py [--matrix 512] [--input nifti|dicom] [--method nlr]``.
"""

from __future__ import annotations

import argparse
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

TARGET_S = 90.0
TARGET_GB = 4.0


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{platform.platform()}, {cpu}, {n} cores, python {platform.python_version()}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--matrix", type=int, default=512)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--input", choices=("nifti", "dicom"), default="nifti")
    ap.add_argument("--method", default="nlr")
    ap.add_argument("--no-motion", action="store_true")
    args = ap.parse_args()

    from ctpmaps.phantom import PhantomConfig, acquisition_preset, simulate_patient
    from ctpmaps.phantom.write import write_phantom_study

    print(f"# bench_run  {datetime.datetime.now():%Y-%m-%d %H:%M}  {_machine()}")
    cfg = PhantomConfig(acquisition=acquisition_preset("seed", matrix=args.matrix))
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        ph = simulate_patient(cfg, seed=args.seed, normal=False, patient_id="BENCH-001")
        folder = write_phantom_study(ph, tmp, formats=(args.input,))
        study = folder / "ctp.nii.gz" if args.input == "nifti" else folder / "dicom"
        shape = ph.study.frames.shape
        del ph
        print(
            f"phantom {shape} simulated and written ({args.input}): {time.perf_counter() - t:.1f} s"
        )
        out = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "ctpmaps", "run", str(study), str(out),
               "--method", args.method]  # fmt: skip
        if args.no_motion:
            cmd.append("--no-motion")
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t
        peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6
        if proc.returncode != 0:
            print(proc.stdout, proc.stderr)
            return 1
        record = json.loads((out / "run.json").read_text())
    print(f"command: ctpmaps run STUDY OUT --method {args.method}"
          + (" --no-motion" if args.no_motion else ""))  # fmt: skip
    print("time per stage (s):")
    for stage, seconds in record["timings_s"].items():
        print(f"  {stage:28s} {seconds:7.2f}")
    d = record["results"]["decision"]
    print(f"core {d['core_ml']} mL, hypoperfusion {d['hypoperfusion_ml']} mL, "
          f"mismatch ratio {d['mismatch_ratio']}")  # fmt: skip
    print(f"end to end (child process, with start-up): {wall:.1f} s (target < {TARGET_S:g} s)")
    print(f"peak memory of the run: {peak_gb:.2f} GB (target < {TARGET_GB:g} GB)")
    return 0 if wall < TARGET_S and peak_gb < TARGET_GB else 1


if __name__ == "__main__":
    sys.exit(main())

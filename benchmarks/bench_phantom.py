"""Benchmark: phantom simulation of a full-size patient and a small cohort.

Targets (issue 2): a 512 x 512 x 8 x 89 patient in under 20 s; a cohort uses all cores.
Run: ``python benchmarks/bench_phantom.py``. Prints machine, date and timings.
"""

from __future__ import annotations

import datetime
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

from ctpmaps.phantom import PhantomConfig, acquisition_preset, simulate_patient
from ctpmaps.phantom.anatomy import load_template
from ctpmaps.phantom.write import write_cohort, write_phantom_study


def main() -> int:
    print(
        f"# bench_phantom  {datetime.datetime.now():%Y-%m-%d %H:%M}  "
        f"{platform.platform()}  {os.cpu_count()} cores  python {platform.python_version()}"
    )
    t = time.perf_counter()
    load_template()
    print(f"template load (first call per process): {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    ph = simulate_patient(PhantomConfig(), seed=1, normal=False)
    sim = time.perf_counter() - t
    print(f"simulate 512x512x8x89 patient: {sim:.1f} s (target < 20 s)")
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        write_phantom_study(ph, tmp, formats=("nifti",))
        print(f"write NIfTI + truth: {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        write_phantom_study(ph, Path(tmp) / "d", formats=("dicom",))
        print(f"write DICOM series (712 files) + truth: {time.perf_counter() - t:.1f} s")
        cfg = PhantomConfig(acquisition=acquisition_preset("seed", matrix=128))
        times = {}
        for workers in (1, os.cpu_count() or 1):
            t = time.perf_counter()
            write_cohort(
                Path(tmp) / f"c{workers}", n_patients=6, seed=0, config=cfg, workers=workers
            )
            times[workers] = time.perf_counter() - t
            print(f"cohort of 6 at 128, {workers} worker(s): {times[workers]:.1f} s")
        if len(times) > 1:
            one, many = times[1], times[max(times)]
            print(f"cohort speed-up with {max(times)} workers: {one / many:.2f}x")
        size = sum(f.stat().st_size for f in (Path(tmp) / "c1").rglob("*") if f.is_file())
        print(
            f"cohort disk use at 128: {size / 6 / 1e6:.1f} MB per patient "
            f"({size / 6 * 115 / 1e9:.2f} GB for 115 patients)"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(f"peak memory (this process): {peak:.2f} GB")
    return 0 if sim < 20 else 1


if __name__ == "__main__":
    sys.exit(main())

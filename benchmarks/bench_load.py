"""Benchmark: load a 712-file 512 x 512 CT perfusion study (8 slices x 89 frames).

Writes the study with `write_dicom_study` to a temporary folder, times `read_dicom_study`
(best of 3) and prints one line: machine, date, seconds. Exits 1 when over the 5 s target.

    python benchmarks/bench_load.py [--compression rle] [--repeats 3] [--target 5]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ctpmaps.io.dicom import read_dicom_study, write_dicom_study
from ctpmaps.io.study import Study


def make_study(nx: int = 512, ny: int = 512, nz: int = 8, nt: int = 89, seed: int = 0) -> Study:
    """A head-sized synthetic study: noisy water disc on air, 0.5 s frames, 5 mm slices."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:ny, :nx]
    disc = ((xx - nx / 2) ** 2 + (yy - ny / 2) ** 2 < (0.4 * nx) ** 2).T  # (x, y)
    base = np.where(disc, 35.0, -1000.0).astype(np.float32)
    frames = np.empty((nx, ny, nz, nt), dtype=np.float32)
    for k in range(nt):
        frames[..., k] = base[..., None] + rng.normal(0.0, 8.0, (nx, ny, nz)).astype(np.float32)
    spacing = 250.0 / nx
    affine = np.diag([-spacing, -spacing, 5.0, 1.0])
    affine[:3, 3] = [125.0, 125.0, 0.0]
    return Study(frames, affine, np.arange(nt) * 0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compression", default=None, help="None, jpeg-lossless, jpeg-ls, ...")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--target", type=float, default=5.0, help="seconds")
    args = parser.parse_args(argv)
    study = make_study()
    with tempfile.TemporaryDirectory(prefix="ctpmaps-bench-") as tmp:
        folder = Path(tmp) / "ctp"
        t0 = time.perf_counter()
        write_dicom_study(study, folder, compression=args.compression, uid_seed="bench")
        write_s = time.perf_counter() - t0
        n_files = len(list(folder.iterdir()))
        best = float("inf")
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            loaded = read_dicom_study(folder)
            best = min(best, time.perf_counter() - t0)
        assert loaded.frames.shape == study.frames.shape
    line = (
        f"bench_load: {platform.platform()} {platform.processor() or platform.machine()} "
        f"cpus={os.cpu_count()} date={datetime.date.today().isoformat()} "
        f"files={n_files} compression={args.compression or 'none'} "
        f"read_s={best:.2f} (best of {args.repeats}) write_s={write_s:.2f} target_s={args.target:g}"
    )
    print(line)
    return 0 if best <= args.target else 1


if __name__ == "__main__":
    sys.exit(main())

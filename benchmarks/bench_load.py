"""Benchmark: load a 712-file 512 x 512 CT perfusion study (8 slices x 89 frames).

Writes the study with `write_dicom_study` to a temporary folder, then times, side by side
in one run, `read_dicom_study` and a bare pydicom loop over the same files
(``pydicom.dcmread`` + ``pixel_array * slope + intercept`` into a preallocated float32
array). The two alternate (which goes first alternates too); the medians of wall and CPU
time and their ratios are printed with the machine, the date and the load average (the
wall ratio is the target; on a machine shared with other jobs the CPU ratio is steadier).
Exits 1 when the wall ratio is over the target (1.5: issue 11).

    python benchmarks/bench_load.py [--compression rle] [--repeats 7] [--target 1.5]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom

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


def bare_loop(folder: Path) -> np.ndarray:
    """The baseline: read and rescale every file with pydicom, nothing else."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    first = pydicom.dcmread(files[0], stop_before_pixels=True)
    out = np.empty((len(files), int(first.Rows), int(first.Columns)), dtype=np.float32)
    for i, path in enumerate(files):
        ds = pydicom.dcmread(path)
        out[i] = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    return out


def _timed(fn, *args) -> tuple[float, float]:
    """(wall, CPU) seconds of one call; its result freed before the next."""
    t0, c0 = time.perf_counter(), time.process_time()
    result = fn(*args)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    del result
    return seconds, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compression", default=None, help="None, jpeg-lossless, jpeg-ls, ...")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--target", type=float, default=1.5, help="ratio read / bare loop")
    parser.add_argument("--folder", type=Path, help="time this DICOM folder instead")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="ctpmaps-bench-") as tmp:
        folder, write_s = args.folder, float("nan")
        if folder is None:
            study = make_study()
            folder = Path(tmp) / "ctp"
            t0 = time.perf_counter()
            write_dicom_study(study, folder, compression=args.compression, uid_seed="bench")
            write_s = time.perf_counter() - t0
            loaded = read_dicom_study(folder)  # warm-up: page cache, imports, decoder plugins
            np.testing.assert_array_equal(loaded.frames[..., 3], np.rint(study.frames[..., 3]))
            del loaded, study
        n_files = len([p for p in folder.iterdir() if not p.name.startswith(".")])
        times: dict[str, list[tuple[float, float]]] = {"bare": [], "read": []}
        for r in range(args.repeats):
            pair = [("bare", bare_loop), ("read", read_dicom_study)]
            for name, fn in pair if r % 2 == 0 else pair[::-1]:
                times[name].append(_timed(fn, folder))
    bare, read = [w for w, _ in times["bare"]], [w for w, _ in times["read"]]
    ratios = [r / b for r, b in zip(read, bare, strict=True)]
    bare_s, read_s = statistics.median(bare), statistics.median(read)
    ratio = read_s / bare_s
    cpu = {k: statistics.median(c for _, c in v) for k, v in times.items()}
    line = (
        f"bench_load: {platform.platform()} {platform.processor() or platform.machine()} "
        f"cpus={os.cpu_count()} date={datetime.datetime.now().isoformat(timespec='minutes')} "
        f"load={load_before:.1f}->{os.getloadavg()[0]:.1f} files={n_files} "
        f"compression={args.compression or 'none'} repeats={args.repeats} "
        f"bare_loop_s={bare_s:.2f} read_dicom_study_s={read_s:.2f} ratio={ratio:.2f} "
        f"(per-pair ratios {min(ratios):.2f}-{max(ratios):.2f}) target_ratio={args.target:g} "
        f"cpu_bare_s={cpu['bare']:.2f} cpu_read_s={cpu['read']:.2f} "
        f"cpu_ratio={cpu['read'] / cpu['bare']:.2f} write_s={write_s:.2f}"
    )
    print(line)
    return 0 if ratio <= args.target else 1


if __name__ == "__main__":
    sys.exit(main())

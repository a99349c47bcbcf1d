"""Benchmark: ``ctpmaps batch`` over a phantom cohort with corrupted studies, 1 and 2 workers.

Target (issue 14): a cohort of 100 studies at 128 x 128 of which 10 are corrupted: the 90
good ones complete, the 10 bad ones are listed with their errors, and 2 workers go faster
than 1 (time per study and speed-up reported). On a 2-core machine shared with other jobs
the speed-up is bounded by the free cores: the load average is printed beside it.

The cohort: ``--studies`` minus ``--corrupted`` phantom patients (`write_cohort`, 128 x 128 x
8 x 89, seed 0), and one folder per corrupted study, each made from a good patient's files
by one of the damages in `DAMAGES` (a truncated or corrupted gzip stream, bytes that are not
NIfTI, an empty file, a 3D volume, a NaN affine, NaN voxels, frame times that are not
numbers or too few, frames without a contrast bolus). ``ctpmaps batch COHORT OUT --workers
N`` (default chain: motion correction, filter, NLR, DICOM, report) runs in a child process
for each N into a new folder; its wall time, peak memory (``wait4``: the batch and its
worker processes) and ``cohort_summary.csv`` are read.

Run: ``python benchmarks/bench_batch.py [--studies 100] [--corrupted 10] [--workers 1 2]``.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import gzip
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _common import load, machine, run_child


def _nifti(src: Path, dst: Path, change: Callable) -> None:
    """Write ``dst/ctp.nii.gz`` from the good study ``src`` after ``change(data, affine)``
    returns the new (data, affine); the sidecar is copied unchanged."""
    import nibabel as nib

    img = nib.load(src / "ctp.nii.gz")
    data, affine = change(np.asarray(img.dataobj), img.affine.copy())
    finite = bool(np.all(np.isfinite(affine)))
    out = nib.Nifti1Image(data, affine if finite else img.affine)
    out.header.set_xyzt_units("mm", "sec")
    if not finite:  # nibabel refuses a NaN affine: written into the header's rows instead
        header = out.header.copy()
        header["srow_x"], header["srow_y"], header["srow_z"] = affine[:3]
        header["sform_code"], header["qform_code"] = 1, 0
        out = nib.Nifti1Image(data, None, header=header)
    nib.save(out, dst / "ctp.nii.gz")
    shutil.copy(src / "ctp.json", dst / "ctp.json")


def _gz(src: Path, dst: Path, change: Callable[[bytes], bytes]) -> None:
    (dst / "ctp.nii.gz").write_bytes(change((src / "ctp.nii.gz").read_bytes()))
    shutil.copy(src / "ctp.json", dst / "ctp.json")


def _sidecar(src: Path, dst: Path, change: Callable[[dict], dict]) -> None:
    shutil.copy(src / "ctp.nii.gz", dst / "ctp.nii.gz")
    meta = json.loads((src / "ctp.json").read_text())
    (dst / "ctp.json").write_text(json.dumps(change(meta)))


def _flip_middle(raw: bytes) -> bytes:
    b = bytearray(raw)
    mid = len(b) // 2
    b[mid : mid + 64] = bytes(255 - v for v in b[mid : mid + 64])
    return bytes(b)


def _nan_voxels(data, affine):
    data = data.astype(np.float32)
    data[10:20, 10:20, 2, 30] = np.nan
    return data, affine


def _nan_affine(data, affine):
    affine[0, 0] = np.nan
    return data, affine


#: name -> how a corrupted study is made from a good one (its folder -> the new folder).
DAMAGES: dict[str, Callable[[Path, Path], None]] = {
    "truncated-gzip": lambda s, d: _gz(s, d, lambda raw: raw[: len(raw) // 2]),
    "corrupted-gzip": lambda s, d: _gz(s, d, _flip_middle),
    "not-nifti": lambda s, d: _gz(s, d, lambda raw: gzip.compress(b"not an image\n" * 100)),
    "empty-file": lambda s, d: _gz(s, d, lambda raw: b""),
    "3d-volume": lambda s, d: _nifti(s, d, lambda a, m: (a[..., 0], m)),
    "nan-affine": lambda s, d: _nifti(s, d, _nan_affine),
    "nan-voxels": lambda s, d: _nifti(s, d, _nan_voxels),
    "times-not-numbers": lambda s, d: _sidecar(
        s, d, lambda m: {**m, "FrameTimes": ["t"] * len(m["FrameTimes"])}
    ),
    "too-few-times": lambda s, d: _sidecar(
        s, d, lambda m: {**m, "FrameTimes": m["FrameTimes"][:10]}
    ),
    "no-bolus": lambda s, d: _nifti(
        s, d, lambda a, m: (np.repeat(a[..., :1], a.shape[3], axis=3), m)
    ),
}


def make_cohort(root: Path, n_good: int, n_bad: int, matrix: int, seed: int) -> list[str]:
    """Write the cohort; returns the names of the corrupted studies."""
    from ctpmaps.phantom import PhantomConfig, acquisition_preset
    from ctpmaps.phantom.write import write_cohort

    cfg = PhantomConfig(acquisition=acquisition_preset("seed", matrix=matrix))
    write_cohort(root, n_patients=n_good, seed=seed, config=cfg)
    good = sorted(p for p in root.iterdir() if p.is_dir())
    bad = []
    kinds = list(DAMAGES)
    for i in range(n_bad):
        kind = kinds[i % len(kinds)]
        name = f"BAD-{i + 1:02d}-{kind}"
        (root / name).mkdir()
        DAMAGES[kind](good[i % len(good)], root / name)
        bad.append(name)
    return bad


def summary(out: Path) -> dict[str, dict]:
    with open(out / "cohort_summary.csv") as fh:
        return {r["study"]: r for r in csv.DictReader(fh)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=100, help="cohort size, corrupted included")
    ap.add_argument("--corrupted", type=int, default=10)
    ap.add_argument("--matrix", type=int, default=128)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    n_good = args.studies - args.corrupted
    print(f"# bench_batch  {datetime.datetime.now():%Y-%m-%d %H:%M}  {machine()}")
    print(f"load average at the start: {load()}")
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "cohort"
        t = time.perf_counter()
        bad = make_cohort(root, n_good, args.corrupted, args.matrix, args.seed)
        took = time.perf_counter() - t
        print(f"cohort: {n_good} phantom studies at {args.matrix} x {args.matrix} x 8 x 89 and "
              f"{len(bad)} corrupted, written in {took:.0f} s", flush=True)  # fmt: skip
        results = {}
        for workers in args.workers:
            out = Path(tmp) / f"batch-{workers}"
            cmd = [sys.executable, "-m", "ctpmaps", "batch", str(root), str(out),
                   "--workers", str(workers)]  # fmt: skip
            r = run_child(cmd)
            rows = summary(out) if (out / "cohort_summary.csv").exists() else {}
            done = [n for n, row in rows.items() if row["status"] == "done"]
            failed = {n: row["error"] for n, row in rows.items() if row["status"] == "failed"}
            seconds = [float(rows[n]["seconds"]) for n in done if rows[n]["seconds"]]
            peaks = [float(rows[n]["peak_memory_gb"]) for n in done if rows[n]["peak_memory_gb"]]
            right = sorted(failed) == sorted(bad) and len(done) == n_good
            ok &= right
            results[workers] = {**r, "done": len(done), "failed": failed, "right": right,
                                "study_s": np.median(seconds) if seconds else float("nan"),
                                "study_peak": max(peaks, default=float("nan"))}  # fmt: skip
            print(f"  {workers} worker(s): {r['wall_s']:.0f} s, exit {r['code']}, "
                  f"load {r['load']}", flush=True)  # fmt: skip
    print(f"command: ctpmaps batch COHORT OUT --workers N  ({n_good} good + {len(bad)} corrupted)")
    print(
        "| workers | wall s | s per study (wall / studies) | studies per minute | median "
        "study s (summary) | done | failed | as expected | speed-up vs first | peak GB "
        "(batch process) | largest study peak GB | load before -> after |"
    )
    print("|" + "---|" * 12)
    first = results[args.workers[0]]["wall_s"]
    for workers, r in results.items():
        per = r["wall_s"] / args.studies
        print(f"| {workers} | {r['wall_s']:.0f} | {per:.2f} | {60 / per:.1f} | "
              f"{r['study_s']:.1f} | {r['done']} | {len(r['failed'])} | "
              f"{'yes' if r['right'] else 'NO'} | {first / r['wall_s']:.2f}x | "
              f"{r['peak_gb']:.2f} | {r['study_peak']:.2f} | {r['load']} |")  # fmt: skip
    errors = results[args.workers[0]]["failed"]
    print("\ncorrupted studies and the errors the batch listed for them:")
    for name in bad:
        print(f"- {name}: {errors.get(name, 'NOT LISTED AS FAILED')}")
    for name in sorted(set(errors) - set(bad)):
        print(f"- good study {name} FAILED: {errors[name]}")
    print(f"load average at the end: {load()}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

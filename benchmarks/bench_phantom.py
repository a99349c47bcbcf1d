"""Benchmark and statistics of the phantom; writes the measured section of docs/phantom.md.

1. Speed: a 512 x 512 x 8 x 89 patient simulated by the default (heterogeneous) model and
   by the classic preset, alternately in one run; the ratio of their median times is the
   figure (target: at most 1.5).
2. Output: writing that patient as NIfTI and as DICOM; a cohort of 6 at matrix 128 on one
   worker and on all cores.
3. The default model's cohort statistics (seeds 500 and up, noise-free): lesion volumes,
   true Tmax of healthy tissue, residue classes, inputs, and the discretisation error of the
   shared fine-grid curves against per-voxel convolutions (``tests/phantom``).

Run: ``python benchmarks/bench_phantom.py [--repeats 2] [--patients 20] [--matrix 128]
[--skip-io] [--no-doc]``. Prints everything; replaces the section between the markers of
``docs/phantom.md`` unless ``--no-doc``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ctpmaps.io.atomic import atomic_path
from ctpmaps.phantom import PhantomConfig, acquisition_preset, simulate_patient
from ctpmaps.phantom.anatomy import load_template
from ctpmaps.phantom.write import write_cohort, write_phantom_study

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "phantom"))
from phantom_reference import curve_errors  # noqa: E402

DOC = ROOT / "docs" / "phantom.md"
BEGIN, END = "<!-- bench_phantom: begin -->", "<!-- bench_phantom: end -->"


def speed(repeats: int) -> list[str]:
    """Median times of both models at 512, alternating, and their ratio."""
    times: dict[str, list[float]] = {"classic": [], "heterogeneous": []}
    for _ in range(repeats):
        for model in times:
            t = time.perf_counter()
            simulate_patient(PhantomConfig(model=model), seed=1, normal=False)
            times[model].append(time.perf_counter() - t)
            print(f"  {model}: {times[model][-1]:.1f} s", flush=True)
    med = {k: float(np.median(v)) for k, v in times.items()}
    ratio = med["heterogeneous"] / med["classic"]
    return [
        f"- simulate 512 x 512 x 8 x 89 (seed 1, stroke), median of {repeats}: default "
        f"{med['heterogeneous']:.1f} s, classic {med['classic']:.1f} s, ratio **{ratio:.2f}** "
        "(target <= 1.5)",
    ]


def output_io() -> list[str]:
    """Writing one 512 patient and a cohort of 6 at 128."""
    lines = []
    ph = simulate_patient(PhantomConfig(), seed=1, normal=False)
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("nifti", "dicom"):
            t = time.perf_counter()
            write_phantom_study(ph, Path(tmp) / fmt, formats=(fmt,))
            lines.append(f"- write it as {fmt} + truth: {time.perf_counter() - t:.1f} s")
        cfg = PhantomConfig(acquisition=acquisition_preset("seed", matrix=128))
        for workers in sorted({1, os.cpu_count() or 1}):
            t = time.perf_counter()
            write_cohort(Path(tmp) / f"c{workers}", n_patients=6, config=cfg, workers=workers)
            lines.append(
                f"- cohort of 6 at 128, {workers} worker(s): {time.perf_counter() - t:.1f} s"
            )
        size = sum(f.stat().st_size for f in (Path(tmp) / "c1").rglob("*") if f.is_file())
        lines.append(f"- disk use at 128 (NIfTI + truth): {size / 6 / 1e6:.1f} MB per patient")
    return lines


def _range(values, digits: int = 1) -> str:
    v = np.asarray(values, dtype=float)
    return "-".join(f"{x:.{digits}f}" for x in (v.min(), np.median(v), v.max()))


def statistics(n: int, matrix: int) -> list[str]:
    """Distributions of the default model over ``n`` patients (noise-free)."""
    cfg = PhantomConfig(acquisition=acquisition_preset("seed", matrix=matrix))
    rows, healthy_tmax, labels, rcbf, tmax = [], [], np.zeros(4), [], []
    for i in range(n):
        t = simulate_patient(cfg, seed=500 + i, noise=False).truth
        side, b = t.params["lesion"]["side"], t.masks["brain"]
        other = t.hemisphere == (2 if side == "left" else 1) if side else np.ones_like(b)
        healthy_tmax.append(t.maps["tmax"][b & other])
        labels += np.bincount(t.residue_label[b & other], minlength=4)
        rcbf.append(t.maps["cbf"][t.masks["hypoperfusion"]] / t.reference_cbf)
        tmax.append(t.maps["tmax"][b & ~other])
        p = t.params["input_function"]
        rows.append({**t.volumes_ml, "side": side, "kind": p["injection"], "late": p["late"],
                     "ratio": t.vof_aif_area_ratio, "fill": t.params["sinus_fill"]})  # fmt: skip
    strokes = [r for r in rows if r["side"]]
    ht = np.concatenate(healthy_tmax)
    kinds = {k: sum(r["kind"] == k for r in rows) for k in ("boxcar", "split", "slow")}
    rc_bins = np.histogram(np.concatenate(rcbf), np.arange(0.1, 0.601, 0.05))[0]
    tm_bins = np.histogram(np.concatenate(tmax), np.arange(3.0, 9.01, 0.5))[0]
    errors = [e for s in (None, "box") for e in _errors(s)]
    return [
        f"- {n} patients at matrix {matrix} (seeds 500-{499 + n}), {len(strokes)} strokes, "
        f"{n - len(strokes)} normal",
        "- volumes over strokes, min-median-max (mL): "
        + ", ".join(
            f"{k} {_range([r[k] for r in strokes])}"
            for k in ("core", "penumbra", "hypoperfusion", "severe", "oligaemia")
        ),  # fmt: skip
        f"- true Tmax of healthy-hemisphere brain: median {np.median(ht):.2f} s, 95th "
        f"percentile {np.percentile(ht, 95):.2f} s, 99th {np.percentile(ht, 99):.2f} s",
        "- residue classes there: "
        + ", ".join(
            f"{name} {100 * labels[c] / labels.sum():.0f} %"
            for c, name in ((1, "box-like"), (2, "intermediate"), (3, "exponential-like"))
        ),  # fmt: skip
        f"- voxels per 0.05 bin of rCBF 0.10-0.60 inside hypoperfusion: min {rc_bins.min()}; "
        f"per 0.5 s bin of Tmax 3-9 s on the lesion side: min {tm_bins.min()}",
        f"- injections: {kinds}; late boluses {sum(r['late'] for r in rows)}; VOF/AIF area "
        f"{_range([r['ratio'] for r in rows], 2)}; sinus fill "
        f"{_range([r['fill'] for r in rows], 2)}",
        f"- shared fine-grid curves vs per-voxel convolution on a 0.005 s grid: max error "
        f"{100 * max(errors):.3f} % of the curve's peak over {len(errors)} voxels",
    ]


def _errors(shape: str | None) -> list[float]:
    cfg = PhantomConfig(acquisition=acquisition_preset("seed", matrix=64))
    ph = simulate_patient(cfg, seed=101, normal=False, noise=False, residue_shape=shape)
    return curve_errors(ph)


def write_doc(lines: list[str]) -> None:
    text = DOC.read_text()
    head, rest = text.split(BEGIN)
    _, tail = rest.split(END)
    with atomic_path(DOC) as tmp:
        tmp.write_text(head + BEGIN + "\n" + "\n".join(lines) + "\n" + END + tail)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--patients", type=int, default=20)
    ap.add_argument("--matrix", type=int, default=128)
    ap.add_argument("--skip-io", action="store_true")
    ap.add_argument("--no-doc", action="store_true")
    args = ap.parse_args()
    load = os.getloadavg()[0]
    header = (
        f"`python benchmarks/bench_phantom.py` — {datetime.datetime.now():%Y-%m-%d %H:%M}, "
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, load average {load:.1f} at the start:"
    )
    print(header)
    t = time.perf_counter()
    load_template()
    print(f"template load (first call per process): {time.perf_counter() - t:.1f} s")
    lines = speed(args.repeats)
    print("\n".join(lines), flush=True)
    if not args.skip_io:
        io_lines = output_io()
        lines += io_lines
        print("\n".join(io_lines), flush=True)
    stats = statistics(args.patients, args.matrix)
    lines += stats
    print("\n".join(stats))
    lines.append(
        f"- peak memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB"
    )
    print(lines[-1])
    if not args.no_doc:
        write_doc(["", header, "", *lines, ""])
    return 0


if __name__ == "__main__":
    sys.exit(main())

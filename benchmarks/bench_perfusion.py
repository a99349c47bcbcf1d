"""Speed and memory of the perfusion models on a full-size simulated study.

A 512 x 512 x 8 x 89 study (0.5 s frames) with about 500k brain voxels (an ellipse per
slice) of realistic curves: gamma-variate AIF with recirculation (peak ~300 HU, a little
noise as from ~100 averaged voxels), tissue classes (grey and white matter, penumbra,
core) with spread, delays 0-6 s, a gamma residue (shape 3), and Gaussian noise of 15 HU
per frame. Each model is timed on the whole study (``model.fit`` plus all maps) with its
peak traced memory; the seed's per-voxel simplex (``simplex_baseline.py``) runs on a
random sample of voxels in the same run, giving the per-voxel speed ratio and the fraction
of voxels where the fast NLR's SSE is no worse than the simplex's.

    .venv/bin/python benchmarks/bench_perfusion.py               # full study
    .venv/bin/python benchmarks/bench_perfusion.py --size 128    # quick look

``nlr-old`` is the NLR as it was before issue 12 (box alone, lower MTT bound 0.02 s),
timed in the same run for the ratio new / old. Timings on a shared machine are noisy:
compare the ratios printed side by side.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import os
import platform
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from simplex_baseline import fit_simplex  # noqa: E402

from ctpmaps.perfusion import BoxNLRModel, BSVDModel, OSVDModel, SSVDModel  # noqa: E402
from ctpmaps.perfusion.boxnlr import box_curves  # noqa: E402
from ctpmaps.physics import residue, tissue_scale  # noqa: E402

#: Tissue classes: CBF (mL/100 g/min), CBV (mL/100 g), delay range (s), share of voxels.
CLASSES = {
    "grey matter": (60.0, 4.0, (0.0, 2.0), 0.35),
    "white matter": (25.0, 2.2, (0.0, 2.0), 0.45),
    "penumbra": (20.0, 3.5, (2.0, 6.0), 0.12),
    "core": (8.0, 1.2, (2.0, 6.0), 0.08),
}
NOISE_HU = 15.0
#: Relative SSE tolerances of the comparison with the simplex.
TOLERANCES = (1e-9, 1e-6, 1e-5, 1e-4)
FRAMES = 89
DT = 0.5


def aif_curve(t: np.ndarray) -> np.ndarray:
    """AIF in ΔHU: first pass at 6 s (peak 300 HU) and a recirculation 8 s later."""
    first = np.where(t > 6, ((t - 6) / 4.5) ** 3 * np.exp(3 - (t - 6) / 1.5), 0.0)
    second = np.where(t > 14, ((t - 14) / 6.0) ** 3 * np.exp(3 - (t - 14) / 2.0), 0.0)
    return 300.0 * first + 45.0 * second


def curve_library(times: np.ndarray, mtts: np.ndarray, delays: np.ndarray) -> np.ndarray:
    """Noise-free tissue curves for CBF = 1, shape (n_mtt, n_delay, t), fine-grid convolution."""
    fine = 0.02
    tf = np.arange(0, times[-1] + 20, fine)
    a = aif_curve(tf)
    lib = np.empty((mtts.size, delays.size, times.size))
    for i, m in enumerate(mtts):
        c = tissue_scale() * np.convolve(a, residue(tf, m, "gamma"))[: tf.size] * fine
        for j, d in enumerate(delays):
            lib[i, j] = np.interp(times - d, tf, c, left=0.0)
    return lib


def simulate_study(size: int, seed: int = 0, noise: float = NOISE_HU) -> dict[str, np.ndarray]:
    """A (size, size, 8, 89) study of ΔHU, its brain mask, AIF and per-voxel truth."""
    rng = np.random.default_rng(seed)
    times = np.arange(FRAMES) * DT
    yy, xx = np.mgrid[:size, :size]
    r = ((xx - size / 2) / (0.293 * size)) ** 2 + ((yy - size / 2) / (0.262 * size)) ** 2
    mask = np.repeat((r <= 1)[:, :, None], 8, axis=2)
    n = int(mask.sum())
    names = list(CLASSES)
    share = np.array([CLASSES[k][3] for k in names])
    label = rng.choice(len(names), size=n, p=share / share.sum())
    cbf = np.array([CLASSES[k][0] for k in names])[label] * rng.uniform(0.8, 1.2, n)
    cbv = np.array([CLASSES[k][1] for k in names])[label] * rng.uniform(0.8, 1.2, n)
    lo = np.array([CLASSES[k][2][0] for k in names])[label]
    hi = np.array([CLASSES[k][2][1] for k in names])[label]
    delay = rng.uniform(lo, hi)
    mtt = 60 * cbv / cbf
    mtts = np.geomspace(1.0, 30.0, 120)
    delays = np.arange(0.0, 6.01, 0.1)
    lib = curve_library(times, mtts, delays).astype(np.float32)
    im = np.clip(np.searchsorted(mtts, mtt), 0, mtts.size - 1)
    idl = np.clip(np.round(delay / 0.1).astype(int), 0, delays.size - 1)
    curves = np.empty((n, FRAMES), dtype=np.float32)
    step = 65536
    for s in range(0, n, step):
        sl = slice(s, s + step)
        curves[sl] = lib[im[sl], idl[sl]] * cbf[sl, None].astype(np.float32)
        curves[sl] += rng.normal(0, noise, (curves[sl].shape)).astype(np.float32)
    conc = np.zeros((size, size, 8, FRAMES), dtype=np.float32)
    conc[mask] = curves
    aif = aif_curve(times) + rng.normal(0, noise / 10, FRAMES)
    return {"conc": conc, "mask": mask, "aif": aif, "times": times, "cbf": cbf}


def run_model(model, conc: np.ndarray, mask: np.ndarray) -> tuple[float, float, float, object]:
    """Wall s, CPU s and peak traced MB of ``fit`` plus all maps."""
    tracemalloc.start()
    start, cpu = time.perf_counter(), time.process_time()
    fit = model.fit(conc, mask=mask)
    fit.maps()
    took, cpu = time.perf_counter() - start, time.process_time() - cpu
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return took, cpu, peak, fit


def compare(label: str, curves: np.ndarray, simplex: dict, model: BoxNLRModel, inside=None):
    """Print how often the fast fit's SSE is no worse than the simplex's."""
    p = model.fit(curves.astype(np.float32)).params
    sse = np.empty(len(curves))
    for k in np.unique(p["shape"]):  # the box, or the gamma shape a voxel kept
        sel = p["shape"] == k
        fitted = box_curves(model.times, model.aif_knots, p["cbf"][sel], p["mtt"][sel],
                            p["delay"][sel], scale=model.scale, shape=float(k))  # fmt: skip
        sse[sel] = ((curves[sel] - fitted) ** 2).sum(axis=1)
    rel = (sse - simplex["sse"]) / simplex["sse"]
    sel = np.ones(rel.size, bool) if inside is None else inside
    cells = []
    for tol in TOLERANCES:
        ok = rel[sel] <= tol
        cells.append(f"{ok.mean() * 100:5.1f} %")
    print(f"{label:<58} {sel.sum():>5}  " + "  ".join(cells))
    return rel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="in-plane size (512)")
    parser.add_argument("--sample", type=int, default=200, help="simplex sample voxels (200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--noise", type=float, default=NOISE_HU, help=f"HU per frame ({NOISE_HU:g})"
    )
    parser.add_argument("--methods", default="ssvd,bsvd,osvd,nlr,nlr-old")
    args = parser.parse_args()

    print(f"# bench_perfusion  {datetime.datetime.now().isoformat(timespec='seconds')}")
    print(f"command: {' '.join(sys.argv)}")
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(
        f"machine: {platform.node()} {platform.machine()} cpus={os.cpu_count()} "
        f"load average {load}; python {platform.python_version()}, numpy {np.__version__}"
    )
    start = time.perf_counter()
    study = simulate_study(args.size, args.seed, args.noise)
    n_vox = int(study["mask"].sum())
    print(
        f"study: {study['conc'].shape} float32, {n_vox} brain voxels, noise {args.noise} HU "
        f"(simulated in {time.perf_counter() - start:.1f} s)"
    )
    classes = {
        "ssvd": SSVDModel,
        "bsvd": BSVDModel,
        "osvd": OSVDModel,
        "nlr": BoxNLRModel,
    }
    duration = float(study["times"][-1])
    classes["nlr-old"] = functools.partial(BoxNLRModel, mtt_bounds=(0.02, duration), shapes=())
    models = {m: classes[m](study["aif"], study["times"]) for m in args.methods.split(",")}
    times = {}
    print(
        f"\n{'method':>6} {'wall s':>7} {'cpu s':>7} {'us/voxel':>9} {'peak MB':>8} "
        f"{'median CBF':>11}"
    )
    for name, model in models.items():
        took, cpu, peak, fit = run_model(model, study["conc"], study["mask"])
        times[name] = took
        print(
            f"{name:>6} {took:7.2f} {cpu:7.2f} {took / n_vox * 1e6:9.2f} {peak:8.0f} "
            f"{np.nanmedian(fit.cbf):11.2f}"
        )
        del fit
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process peak RSS (study included): {rss:.0f} MB")
    if "nlr" in times and "nlr-old" in times:
        print(f"NLR new / old wall time in this run: {times['nlr'] / times['nlr-old']:.2f}")
    if "nlr" not in models or args.sample <= 0:
        return

    rng = np.random.default_rng(args.seed + 1)
    flat = np.flatnonzero(study["mask"].ravel())
    pick = np.sort(rng.choice(flat.size, size=min(args.sample, flat.size), replace=False))
    curves = study["conc"].reshape(-1, FRAMES)[flat[pick]].astype(np.float64)
    nlr = models["nlr"]
    start = time.perf_counter()
    simplex = fit_simplex(curves, nlr)
    t_simplex = (time.perf_counter() - start) / pick.size
    print(
        f"\nsimplex baseline on {pick.size} random brain voxels: {t_simplex * 1e3:.1f} ms per voxel"
    )
    print(
        f"{'fast NLR SSE <= simplex SSE (1 + relative tolerance)':<58} {'n':>5}  "
        + "  ".join(f"{t:>7g}" for t in TOLERANCES)
    )
    free = BoxNLRModel(
        study["aif"], study["times"], nonnegative=False, delay_bounds=(-30, 30),
        mtt_bounds=(0.02, duration), shapes=(),
    )  # fmt: skip
    compare(
        "same freedom as the simplex (box, CBF any sign, delay +-30 s, MTT >= 0.02 s)",
        curves, simplex, free,
    )  # fmt: skip
    compare("default model (CBF >= 0, delay 0-20 s), all voxels", curves, simplex, nlr)
    lo_m, hi_m = nlr.mtt_bounds
    lo_d, hi_d = nlr.delay_bounds
    inside = (
        (simplex["cbf"] >= 0)
        & (simplex["mtt"] >= lo_m)
        & (simplex["mtt"] <= hi_m)
        & (simplex["delay"] >= lo_d)
        & (simplex["delay"] <= hi_d)
    )
    compare(
        "default model, voxels whose simplex fit is within its bounds", curves, simplex, nlr, inside
    )
    full = times["nlr"] / n_vox
    print(
        f"\nper-voxel time: simplex {t_simplex * 1e6:,.0f} us; fast NLR {full * 1e6:.2f} us "
        f"(full study, wall)"
    )
    print(f"speed ratio simplex / fast NLR per voxel: {t_simplex / full:,.0f} x")


if __name__ == "__main__":
    main()

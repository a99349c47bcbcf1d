"""Every method on a digital reference object after Kudo et al. 2013, through the command
line as a user runs it; writes ``docs/accuracy_dro.md`` and ``docs/img/accuracy_dro.png``.

The DRO (``tests/forward/dro.py``, written apart from the project) is a DICOM CT series of
square tiles of known CBF (2.5-87.5 mL/100 g/min), CBV (1-5 mL/100 g), MTT (3.4-24 s) and
delay (0-3 s), box, exponential and triangular residues, and a block of artery, with NIfTI
masks of the tiles (brain) and of the artery (AIF). Each setting is written once and each
method runs ``ctpmaps maps DRO OUT --method M --no-motion --mask brain --aif-mask aif``
(``--no-filter`` where the setting says so); the NIfTI maps are read back and each tile's
median (over its voxels at least 2 pixels from its edge) is scored against the truth: the
Pearson r of Kudo's paper, the median absolute error, the change of CBF from the delay 0 s
row to the 3 s row (Kudo's delay dependence), and a constant predictor (the truth's median
over the tiles) beside them.

Run: ``python benchmarks/accuracy_dro.py [--noise 6] [--tile 10] [--out docs/accuracy_dro.md]``
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "forward"))

import dro as D  # noqa: E402

from ctpmaps.perfusion import MODEL_METHODS  # noqa: E402

MAPS = ("cbf", "cbv", "mtt")
UNITS = {"cbf": "mL/100 g/min", "cbv": "mL/100 g", "mtt": "s"}


def settings(noise: float) -> list[tuple[str, float, bool, float]]:
    """(label, noise HU, filter, rescale slope): noise-free with a fine rescale (the
    deconvolution alone), then ``noise`` HU on integer HU, unfiltered and filtered."""
    return [
        ("noise-free, unfiltered", 0.0, False, 0.05),
        (f"{noise:g} HU, unfiltered", noise, False, 1.0),
        (f"{noise:g} HU, filtered (default)", noise, True, 1.0),
    ]


def run_maps(study: Path, masks: dict[str, Path], out: Path, method: str, filt: bool) -> dict:
    """``ctpmaps maps`` on ``study``; the tile maps read back from its NIfTI files."""
    cmd = [sys.executable, "-m", "ctpmaps", "maps", str(study), str(out), "--method",
           method, "--no-motion", "--mask", str(masks["brain"]), "--aif-mask",
           str(masks["aif"])]  # fmt: skip
    if not filt:
        cmd.append("--no-filter")
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    maps = {k: np.asarray(nib.load(out / f"{k}.nii.gz").dataobj) for k in (*MAPS, "tmax")}
    maps["seconds"] = time.perf_counter() - t0
    return maps


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def mape(est: np.ndarray, truth: np.ndarray) -> float:
    """Median absolute error, % of the truth."""
    return float(100 * np.nanmedian(np.abs(est / truth - 1)))


def delay_change(dro: D.DRO, est: np.ndarray, mask: np.ndarray) -> float:
    """Median over (section, column) of CBF at the 3 s row over CBF at the 0 s row, - 1, %."""
    delay = dro.truth("delay")
    n_col = len(D.FLOW_PER_VOLUME)
    first = np.flatnonzero(mask & (delay == D.DELAYS[0]))
    last = np.flatnonzero(mask & (delay == D.DELAYS[-1]))
    # The rows of one section follow each other: tile i of row 0 and tile i + 6 n_col of
    # row 6 share the section and the column.
    pairs = [(i, i + (len(D.DELAYS) - 1) * n_col) for i in first]
    ratio = [est[j] / est[i] for i, j in pairs if j in set(last)]
    return float(100 * (np.nanmedian(ratio) - 1))


def score(dro: D.DRO, tiles: dict[str, np.ndarray], shape: str) -> dict[str, float]:
    """One method's tiles of one residue shape against the truth."""
    m = dro.tile_residue == shape
    out = {}
    for k in MAPS:
        t, e = dro.truth(k)[m], tiles[k][m]
        out[f"r_{k}"] = pearson(e, t)
        out[f"mae_{k}"] = mape(e, t)
    out["delay_cbf"] = delay_change(dro, tiles["cbf"], m)
    tmax_err = tiles["tmax"][m] - dro.truth("tmax")[m]
    out["tmax_bias"] = float(np.nanmedian(tmax_err))
    out["r_tmax"] = pearson(tiles["tmax"][m], dro.truth("tmax")[m])
    return out


def constant(dro: D.DRO, shape: str) -> dict[str, float]:
    """The constant predictor's median absolute error (the truth's median over the tiles)."""
    m = dro.tile_residue == shape
    return {k: mape(np.full(m.sum(), np.median(dro.truth(k)[m])), dro.truth(k)[m]) for k in MAPS}


def reading(results: dict, label: str, methods: list[str]) -> list[str]:
    """A few numbers of the noise-free setting ``label`` in words."""
    out = ["## Reading", ""]
    if "nlr" in methods:
        res = results[(label, "nlr")]
        dro, cbf = res["dro"], res["tiles"]["cbf"]
        err = 100 * (cbf / dro.truth("cbf") - 1)
        shape = dro.tile_residue
        smooth = shape != "triangular"
        near = np.abs(err[smooth]) <= 5
        worst = np.argmax(np.abs(np.where(smooth, err, 0)))
        w = dro.regions[worst]
        out.append(
            f"- Noise-free, the NLR reads CBF within 5 % on {near.sum()} of the {near.size} box "
            "and exponential tiles (MTT 3.4-24 s, delays 0-3 s), the worst "
            f"{err[worst]:+.0f} % ({w.shape}, CBV {w.cbv:g}, MTT {w.mtt:.1f} s, delay "
            f"{w.delay:g} s); its triangular tiles read "
            f"a median {-np.median(err[~smooth]):.0f} % low: none of its shapes (the box and "
            "gamma transit times) has a residue that falls from its onset, as the triangular's "
            "does."
        )
    svd = [m for m in methods if m != "nlr"]
    if svd:
        med = []
        for m in svd:
            res = results[(label, m)]
            dro = res["dro"]
            med.append(np.median(100 * (res["tiles"]["cbf"] / dro.truth("cbf") - 1)))
        out.append(
            f"- The SVD family ({', '.join(svd)}) reads CBF a median {-max(med):.0f} to "
            f"{-min(med):.0f} % low noise-free over all tiles: the truncation of the "
            "deconvolved residue lowers its peak; its CBV is exact (an area ratio)."
        )
    return out + [""]


#: Frame intervals (s) of the NLR's sampling section; each acquisition lasts 60 s.
INTERVALS = (0.5, 1.0, 1.5, 2.0)


def frame_intervals(tmp: Path, tile: int) -> list[str]:
    """The NLR on the noise-free DRO sampled every 0.5-2 s (60 s each), unfiltered: median
    and worst CBF error per residue shape, worst CBV error."""
    lines = [
        "## Frame interval (NLR, noise-free, unfiltered)",
        "",
        "The same DRO sampled every 0.5 s (the seed's protocol) to 2 s (clinical protocols "
        "sample every 1-2 s after the first pass), 60 s each. A residue of MTT 3.4 s spans "
        "1.7 frames at 2 s. Cells: median (worst) CBF error over the 245 tiles of the shape, "
        "%; the worst CBV error over all tiles, %.",
        "",
        "| frame interval s | box | exponential | triangular | CBV worst % | s |",
        "|---|---|---|---|---|---|",
    ]
    for dt in INTERVALS:
        dro = D.build(tile=tile, frame_s=dt, n_frames=int(round(60 / dt)))
        folder = tmp / f"interval-{dt:g}"
        D.write_dicom(dro, folder / "dicom", rescale_slope=0.05)
        masks = {n: D.write_mask(dro, getattr(dro, n), folder / f"{n}.nii.gz")
                 for n in ("brain", "aif")}  # fmt: skip
        maps = run_maps(folder / "dicom", masks, folder / "nlr", "nlr", False)
        err = {k: 100 * (dro.tile_medians(maps[k]) / dro.truth(k) - 1) for k in ("cbf", "cbv")}
        shape = dro.tile_residue
        cells = [f"{np.median(err['cbf'][shape == r]):+.1f} ({_worst(err['cbf'][shape == r])})"
                 for r in D.RESIDUES]  # fmt: skip
        lines.append(f"| {dt:g} | " + " | ".join(cells)
                     + f" | {np.abs(err['cbv']).max():.1f} | {maps['seconds']:.0f} |")  # fmt: skip
        print(f"interval {dt:g} s: {maps['seconds']:.0f} s", flush=True)
    return lines + [""]


def _worst(e: np.ndarray) -> str:
    """The error of largest magnitude, signed."""
    return f"{e[np.argmax(np.abs(e))]:+.1f}"


def plot(dro: D.DRO, results: dict, label: str, path: Path) -> None:
    """Tile estimate against truth, one row per method, one column per map (``label``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = [m for (s, m) in results if s == label]
    fig, axes = plt.subplots(len(methods), 3, figsize=(10, 3.1 * len(methods)), squeeze=False)
    colours = {"box": "tab:blue", "exponential": "tab:orange", "triangular": "tab:green"}
    shapes = dro.tile_residue
    for row, method in enumerate(methods):
        tiles = results[(label, method)]["tiles"]
        for col, k in enumerate(MAPS):
            ax = axes[row, col]
            t = dro.truth(k)
            for shape, c in colours.items():
                sel = shapes == shape
                ax.scatter(t[sel], tiles[k][sel], s=6, c=c, label=shape, alpha=0.7)
            lim = [0, max(t.max(), np.nanpercentile(tiles[k], 99)) * 1.05]
            ax.plot(lim, lim, "k-", lw=0.8)
            ax.set_xlim(lim), ax.set_ylim(lim)
            ax.set_title(f"{method}: {k.upper()} ({UNITS[k]})", fontsize=9)
            ax.set_xlabel("truth", fontsize=8), ax.set_ylabel("estimate", fontsize=8)
            ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"Kudo-style DRO, {label}: tile medians against the truth", fontsize=10)
    fig.tight_layout()
    from ctpmaps.io.atomic import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--noise", type=float, default=6.0,
                    help="HU per voxel of the noisy settings (6: the phantom's default dose, "
                    "12 HU on 0.49 mm pixels, on 1 mm pixels)")  # fmt: skip
    ap.add_argument("--tile", type=int, default=10, help="tile side, pixels of 1 mm (10)")
    ap.add_argument("--methods", default=",".join(MODEL_METHODS))
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "accuracy_dro.md")
    ap.add_argument("--plot", type=Path, default=ROOT / "docs" / "img" / "accuracy_dro.png")
    args = ap.parse_args()
    methods = args.methods.split(",")
    t0 = time.perf_counter()
    results, dros = {}, {}
    with tempfile.TemporaryDirectory(prefix="ctpmaps-dro-") as tmp:
        for label, noise, filt, slope in settings(args.noise):
            key = (noise, slope)
            if key not in dros:
                dro = D.build(tile=args.tile, noise=noise, seed=1)
                folder = Path(tmp) / f"dro-{noise:g}-{slope:g}"
                D.write_dicom(dro, folder / "dicom", rescale_slope=slope)
                masks = {n: D.write_mask(dro, getattr(dro, n), folder / f"{n}.nii.gz")
                         for n in ("brain", "aif")}  # fmt: skip
                dros[key] = (dro, folder, masks)
            dro, folder, masks = dros[key]
            for method in methods:
                out = folder / f"{method}-{'f' if filt else 'u'}"
                maps = run_maps(folder / "dicom", masks, out, method, filt)
                tiles = {k: dro.tile_medians(maps[k]) for k in (*MAPS, "tmax")}
                results[(label, method)] = {"tiles": tiles, "seconds": maps["seconds"], "dro": dro}
                print(f"{label}, {method}: {maps['seconds']:.0f} s", flush=True)
        intervals = frame_intervals(Path(tmp), args.tile)
    dro = next(iter(dros.values()))[0]  # the truth is the same in every setting
    plot(dro, results, settings(args.noise)[-1][0], args.plot)
    lines = [
        "# Accuracy on a digital reference object after Kudo et al. 2013",
        "",
        f"Made by `python benchmarks/accuracy_dro.py --noise {args.noise:g} --tile {args.tile}` "
        f"on {datetime.date.today()} ({platform.platform()}, {os.cpu_count()} cores, "
        f"{time.perf_counter() - t0:.0f} s).",
        "",
        "Kudo et al. (Radiology 2013;267:201) judged 13 CT perfusion programs on a digital "
        "phantom of tiles with known values. `tests/forward/dro.py` re-creates its design "
        "from the paper's description (not its files), with the forward model of the tests "
        "(`tests/forward/forward_model.py`; neither imports ctpmaps): one 5 mm section per "
        "residue shape (box, exponential, triangular) and CBV (1-5 mL/100 g), in each 7 "
        "columns of CBF (CBV x 17.5 down to CBV x 2.5 per min: MTT 3.4, 4, 4.8, 6, 8, 12, "
        "24 s) and 7 rows of delay (0-3 s by 0.5 s): 735 tiles of "
        f"{args.tile} x {args.tile} pixels of 1 mm, a boxcar AIF with recirculation "
        "arriving at 6 s in a block of artery, 60 frames at 1 s, written as a DICOM CT "
        "series with pydicom. Each method runs as a user runs it: `ctpmaps maps DICOM OUT "
        "--method M --no-motion --mask brain.nii.gz --aif-mask aif.nii.gz` (the AIF as "
        "given: no VOF), and its NIfTI maps are read back. Each tile's value is the median "
        "over its voxels at least 2 pixels from its edge. Noise: Gaussian, per voxel and "
        f"frame; {args.noise:g} HU on 1 mm pixels is the phantom's default dose (12 HU on "
        "0.49 mm pixels). The noise-free setting is written with a 0.05 HU rescale (no "
        "rounding to whole HU), the noisy ones in whole HU as scanners write them.",
        "",
        "Columns: Pearson r over the 245 tiles of the residue shape (Kudo's measure; r > "
        "0.9 is what the paper calls good), the median absolute error (% of the truth) "
        "beside a constant predictor's (the truth's median over those tiles), the median "
        "change of CBF from the 0 s to the 3 s delay row (Kudo's delay dependence; the "
        "truth has none), and Tmax: its median minus the delay (no tile is dispersed, so "
        "the true Tmax is the delay) and its r with the delay.",
        "",
    ]
    shapes = list(D.RESIDUES)
    for label, *_ in settings(args.noise):
        lines += [
            f"## {label}",
            "",
            "| method | residue | r CBF | r CBV | r MTT | CBF error % | CBV error % | "
            "MTT error % | CBF, delay 0 -> 3 s | Tmax - delay s | r Tmax | s |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for shape in shapes:
            c = constant(dro, shape)
            lines.append(
                f"| constant | {shape} | – | – | – | {c['cbf']:.0f} | {c['cbv']:.0f} | "
                f"{c['mtt']:.0f} | – | – | – | – |"
            )
        for method in methods:
            res = results[(label, method)]
            for shape in shapes:
                s = score(res["dro"], res["tiles"], shape)
                lines.append(
                    f"| {method} | {shape} | {s['r_cbf']:.3f} | {s['r_cbv']:.3f} | "
                    f"{s['r_mtt']:.3f} | {s['mae_cbf']:.1f} | {s['mae_cbv']:.1f} | "
                    f"{s['mae_mtt']:.1f} | {s['delay_cbf']:+.1f} % | {s['tmax_bias']:+.2f} | "
                    f"{s['r_tmax']:.3f} | {res['seconds']:.0f} |"
                )
        lines.append("")
    lines += reading(results, settings(args.noise)[0][0], methods) + intervals
    lines += [
        f"![tile estimates against the truth]({os.path.relpath(args.plot, args.out.parent)})",
        "",
    ]
    from ctpmaps.io.atomic import atomic_path

    with atomic_path(args.out) as tmp:
        tmp.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

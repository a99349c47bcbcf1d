"""Quality of the guided bilateral filter: noise reduction against grey/white contrast.

Issue 4 asks that in homogeneous tissue the noise falls at least 3-fold while the grey/white
matter contrast keeps at least 90 % of its value. This script measures both on phantom
patients at the seed's matrix (512 x 512 x 8 x 89, default dose) for several
(spatial sigma, range sigma) settings, the seed's 3 mm / 20 HU among them:

- *noise*: standard deviation of the noise in homogeneous white matter (WM fraction > 0.95),
  before (noisy minus noise-free frames) and after the filter (filtered noisy frames minus
  the noise-free frames filtered with the *same* weights, i.e. the guide of the noisy
  study), over all frames; the table gives the ratio before / after;
- *contrast*: mean of grey matter (GM fraction > 0.9) minus mean of white matter (WM
  fraction > 0.9), on the unenhanced frames (before the bolus arrives: the CT contrast a
  radiologist reads) and on the temporal mean of all frames (the guide), each as a
  percentage of the noise-free, unfiltered contrast. ``deep`` restricts both classes to
  voxels more than 3 mm (in plane) from the other class: the contrast of large
  homogeneous regions, which any smoothing keeps; ``all`` includes the cortical ribbon.

Writes ``docs/filter.md`` (date, machine, command, table) and prints the table.

Run: ``python benchmarks/filter_quality.py [--patients 1] [--matrix 512]
[--settings 3:20,3:10,3:4,2:6,2:4,2:3]``.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]


def _rois(ph) -> dict[str, np.ndarray]:
    """GM, WM (all and away from the other class) and homogeneous WM, on brain voxels."""
    fr = ph.truth.fractions
    brain = ph.truth.masks["brain"]
    gm, wm = (fr.gm > 0.9) & brain, (fr.wm > 0.9) & brain
    px = float(ph.study.spacing[0])
    # in-plane distance to the other class (slices are 5 mm: the z neighbour is far anyway)
    dist = lambda m: ndimage.distance_transform_edt(~m, sampling=(px, px, 1e6))  # noqa: E731
    away = 3.0
    return {
        "gm": gm,
        "wm": wm,
        "gm_deep": gm & (dist(fr.wm > 0.1) > away) & (dist(fr.csf > 0.1) > away),
        "wm_deep": wm & (dist(fr.gm > 0.1) > away),
        "wm_homog": (fr.wm > 0.95) & brain,
    }


def _contrast(img: np.ndarray, rois, which: str) -> float:
    g, w = ("gm", "wm") if which == "all" else ("gm_deep", "wm_deep")
    return float(img[rois[g]].mean() - img[rois[w]].mean())


def one_patient(i: int, matrix: int, settings: list[tuple[float, float]]) -> list[dict]:
    from ctpmaps.phantom import PhantomConfig, acquisition_preset, simulate_patient
    from ctpmaps.preprocess import guided_bilateral_filter

    cfg = PhantomConfig(acquisition=acquisition_preset("seed", matrix=matrix))
    ph = simulate_patient(cfg, seed=2000 + i, normal=False, keep_noise_free=True)
    noisy, clean = ph.study.frames, ph.truth.noise_free
    times = ph.study.times
    arrival = float(ph.truth.params["input_function"]["arrival_s"])
    pre = times < arrival  # unenhanced frames
    if pre.sum() < 1:
        pre = times <= times[0]
    rois = _rois(ph)
    hom = rois["wm_homog"]
    noise_in = float((noisy - clean)[hom].std())
    ref = {
        "unenhanced": clean[..., pre].mean(-1),
        "mean": clean.mean(-1),
    }
    guide = noisy.mean(-1)
    rows = []
    for s_mm, r_hu in settings:
        kw = dict(sigma_spatial_mm=s_mm, sigma_range_hu=r_hu, guide=guide)
        f_noisy = guided_bilateral_filter(noisy, ph.study.spacing, **kw)
        f_clean = guided_bilateral_filter(clean, ph.study.spacing, **kw)
        noise_out = float((f_noisy - f_clean)[hom].std())
        row = {
            "patient": i,
            "sigma_spatial_mm": s_mm,
            "sigma_range_hu": r_hu,
            "noise_in_hu": noise_in,
            "noise_out_hu": noise_out,
            "noise_fold": noise_in / noise_out,
        }
        out = {"unenhanced": f_noisy[..., pre].mean(-1), "mean": f_noisy.mean(-1)}
        for image in ("unenhanced", "mean"):
            for which in ("all", "deep"):
                c0 = _contrast(ref[image], rois, which)
                c1 = _contrast(out[image], rois, which)
                row[f"c0_{image}_{which}"] = c0
                row[f"kept_{image}_{which}"] = 100.0 * c1 / c0
        rows.append(row)
        print(
            f"patient {i} {s_mm:g} mm / {r_hu:g} HU: noise {noise_in:.1f} -> {noise_out:.2f} HU "
            f"({noise_in / noise_out:.1f}-fold), GM/WM contrast kept "
            f"{row['kept_unenhanced_all']:.0f} % (unenhanced, all), "
            f"{row['kept_unenhanced_deep']:.0f} % (deep)",
            flush=True,
        )
    return rows


def write_doc(rows: list[dict], args, elapsed: float, path: Path) -> str:
    from ctpmaps import __version__
    from ctpmaps.preprocess import SEED_SIGMAS, SIGMA_RANGE_HU, SIGMA_SPATIAL_MM

    settings = sorted({(r["sigma_spatial_mm"], r["sigma_range_hu"]) for r in rows}, reverse=True)
    c0 = {k: np.mean([r[k] for r in rows]) for k in rows[0] if k.startswith("c0_")}
    noise_in = np.mean([r["noise_in_hu"] for r in rows])
    lines = [
        "# Guided bilateral filter: noise against grey/white contrast",
        "",
        f"Generated by `benchmarks/filter_quality.py` on {datetime.date.today():%Y-%m-%d}, "
        f"ctpmaps {__version__}, {platform.platform()}; {elapsed / 60:.1f} min.",
        "",
        f"Command: `python benchmarks/filter_quality.py --patients {args.patients} "
        f"--matrix {args.matrix} --settings {args.settings}`",
        "",
        f"Phantom stroke patients (seeds 2000-{1999 + args.patients}), seed protocol at the "
        f"default dose, matrix {args.matrix}. Noise: SD in homogeneous white matter "
        f"(WM fraction > 0.95) before and after filtering, {noise_in:.1f} HU before. "
        "Contrast: GM (fraction > 0.9) minus WM (fraction > 0.9) mean, as % of the "
        "noise-free unfiltered value; *all* includes the cortical ribbon, *deep* keeps voxels "
        "more than 3 mm in plane from the other class (and GM 3 mm from CSF). Noise-free "
        f"contrast: unenhanced {c0['c0_unenhanced_all']:.1f} HU (all) / "
        f"{c0['c0_unenhanced_deep']:.1f} HU (deep); temporal mean {c0['c0_mean_all']:.1f} / "
        f"{c0['c0_mean_deep']:.1f} HU.",
        "",
        "| spatial sigma | range sigma | noise reduction | contrast kept, unenhanced (all) "
        "| (deep) | contrast kept, mean frame (all) | (deep) |",
        "|---|---|---|---|---|---|---|",
    ]
    for s_mm, r_hu in settings:
        sel = [r for r in rows if (r["sigma_spatial_mm"], r["sigma_range_hu"]) == (s_mm, r_hu)]
        m = lambda k, sel=sel: np.mean([r[k] for r in sel])  # noqa: E731
        tag = {SEED_SIGMAS: " (seed)", (SIGMA_SPATIAL_MM, SIGMA_RANGE_HU): " (default)"}.get(
            (s_mm, r_hu), ""
        )
        lines.append(
            f"| {s_mm:g} mm{tag} | {r_hu:g} HU | {m('noise_fold'):.1f}-fold | "
            f"{m('kept_unenhanced_all'):.0f} % | {m('kept_unenhanced_deep'):.0f} % | "
            f"{m('kept_mean_all'):.0f} % | {m('kept_mean_deep'):.0f} % |"
        )
    lines += [
        "",
        "Means over patients. The target of issue 4 is a noise reduction of at least 3-fold "
        "with at least 90 % of the contrast kept.",
        "",
        "## Why the defaults differ from the seed's",
        "",
        f"The seed filtered with a spatial sigma of {SEED_SIGMAS[0]:g} mm and a range sigma of "
        f"{SEED_SIGMAS[1]:g} HU. Grey and white matter differ by about 8 HU on unenhanced CT "
        "and 10 HU in the guide (the mean frame), and a 20 HU range kernel gives a 10 HU step "
        "88 % of its weight: the seed's filter is nearly a 3 mm Gaussian, which removes "
        "noise thirty-fold but blurs the cortical ribbon into the white matter and the CSF. "
        "The guide, a mean of 89 frames, carries about 1.3 HU of noise at the default dose, so "
        "a range sigma of a few HU separates the tissues without reacting to noise. "
        f"`ctpmaps` defaults to {SIGMA_SPATIAL_MM:g} mm / {SIGMA_RANGE_HU:g} HU "
        "(`ctpmaps.preprocess.SIGMA_SPATIAL_MM`, `SIGMA_RANGE_HU`), which meets both targets; "
        "the seed's settings stay one option away (`ctpmaps preprocess` or `ctpmaps run` with "
        "`--sigma-spatial 3 --sigma-range 20`), and the U-Net's inputs keep them, since "
        "UniToBrain's filtered frames, which it learns from, were made with them.",
        "",
    ]
    text = "\n".join(lines)
    path.write_text(text)
    return text


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--patients", type=int, default=1)
    p.add_argument("--matrix", type=int, default=512)
    p.add_argument("--settings", default="3:20,3:10,3:4,2:6,2:4,2:3")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "filter.md")
    args = p.parse_args()
    settings = [tuple(float(x) for x in s.split(":")) for s in args.settings.split(",")]
    t0 = time.perf_counter()
    rows = [r for i in range(args.patients) for r in one_patient(i, args.matrix, settings)]
    print(write_doc(rows, args, time.perf_counter() - t0, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

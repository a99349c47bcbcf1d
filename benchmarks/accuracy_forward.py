"""Accuracy of every method on the minimal forward model of the tests; writes
``docs/accuracy_forward.md``.

The curves come from ``tests/forward/forward_model.py``, a forward model written apart
from the project (its own AIFs, residues, transport kernel and constants; a test checks it
imports nothing of ``ctpmaps``): the fitters are judged on a truth that does not share
their conventions. Sections: the synthetic grid of issue 12 through `compute_maps` with
the AIF given as a mask; the baseline window (the brain's arrival against the AIF's);
the box NLR's lower MTT bound at realistic noise; Tmax of healthy tissue; relative CBF per
residue shape and per level, at 0, 1.2 and 3 HU of noise (per voxel, 0.5 s frames); the
residue shape and MTT taken from the neighbourhood; tissue whose MTT varies within a
neighbourhood; dispersed tissue; residue shapes between and beyond the NLR's.

Run: ``python benchmarks/accuracy_forward.py [--voxels 400] [--out docs/accuracy_forward.md]``
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "forward"))

from forward_model import (  # noqa: E402
    AIFS,
    FINE_DT,
    Region,
    add_noise,
    build_study,
    convolve,
    exponential_kernel,
    impulse_response,
    simulate,
)

from ctpmaps.io.study import Study  # noqa: E402
from ctpmaps.perfusion import METHODS, MODEL_METHODS, BoxNLRModel, compute_maps  # noqa: E402
from ctpmaps.perfusion.boxnlr import MTT_MIN  # noqa: E402
from ctpmaps.perfusion.concentration import bolus_arrival_frame  # noqa: E402

AFFINE = np.diag([1.0, 1.0, 5.0, 1.0])
NOISES = (0.0, 1.2, 3.0)


def study_of(b) -> Study:
    return Study(b.frames, AFFINE, b.times)


def region_means(b, values: np.ndarray) -> np.ndarray:
    return np.array([values[b.region == i].mean() for i in range(b.region.max() + 1)])


def grid_section() -> list[str]:
    """Issue 12's grid: MTT 2-12 s, CBV 2-4 mL/100 g, delay 0-4 s, box and exponential."""
    regions = [Region(60.0 * cbv / m, m, d, s) for s in ("box", "exponential")
               for m in (2.0, 4.0, 6.0, 8.0, 12.0) for cbv in (2.0, 3.0, 4.0)
               for d in (0.0, 2.0, 4.0)]  # fmt: skip
    box = np.array([r.shape == "box" for r in regions])
    lines = [
        "## Synthetic grid (issue 12), noise-free, AIF given as a mask",
        "",
        "MTT 2-12 s, CBV 2, 3, 4 mL/100 g, delay 0, 2, 4 s, box and exponential residues "
        "(90 regions), AIF arriving at 5 s; `compute_maps(study, aif_mask=...)`. Largest "
        "absolute error over the regions (CBF, CBV, MTT in %, delay in s); the NLR's CBF and "
        "MTT over box residues of MTT >= 4 s. Targets: CBV within 7 % (every SVD method and "
        "residue; NLR on box residues), NLR CBF and MTT within 5 %, delay within 0.3 s.",
        "",
        "| AIF | method | CBV box % | CBV exponential % | CBF box (MTT >= 4 s) % | "
        "MTT box (MTT >= 4 s) % | delay box s |",
        "|---|---|---|---|---|---|---|",
    ]
    for aif in AIFS:
        b = build_study(simulate(regions, aif=aif, arrival=5.0), voxels_per_region=2)
        truth = {k: b.curves.truth(k) for k in ("cbf", "cbv", "mtt", "delay")}
        long = box & (truth["mtt"] >= 4.0)
        for method in MODEL_METHODS:
            r = compute_maps(study_of(b), method=method, mask=b.brain, aif_mask=b.aif_mask)
            got = {k: region_means(b, getattr(r.maps, k)) for k in truth}
            rel = {k: 100 * np.abs(got[k] / truth[k] - 1) for k in ("cbf", "cbv", "mtt")}
            dly = np.abs(got["delay"] - truth["delay"])
            lines.append(
                f"| {aif} | {method} | {rel['cbv'][box].max():.1f} | "
                f"{rel['cbv'][~box].max():.1f} | {rel['cbf'][long].max():.1f} | "
                f"{rel['mtt'][long].max():.1f} | {dly[box].max():.2f} |"
            )
    return lines + [""]


def baseline_section() -> list[str]:
    """The window of the whole-brain mean (before) against the AIF's arrival (now)."""
    regions = [Region(60.0 * cbv / m, m, d) for d in (0.0, 2.0, 4.0)
               for m, cbv in ((4.0, 4.0), (6.0, 3.0), (8.0, 2.5))]  # fmt: skip
    lines = [
        "## Baseline window",
        "",
        "An AIF starting at 5.0 s, box tissue delayed 0, 2 and 4 s (a hemisphere behind an "
        "occlusion), AIF given as a mask, noise-free. *Brain's arrival*: the window ends "
        "where the whole-brain mean curve rises (the rule before issue 12); *AIF's arrival*: "
        "the default now. CBV error over the nine regions, %.",
        "",
        "| AIF | method | brain's arrival: window to | CBV % | AIF's arrival: window to | CBV % |",
        "|---|---|---|---|---|---|",
    ]
    for aif in ("gamma", "boxcar"):
        b = build_study(simulate(regions, aif=aif, arrival=5.0), voxels_per_region=3)
        s = study_of(b)
        old = bolus_arrival_frame(s.frames[b.brain], s.times) + 1
        truth = b.curves.truth("cbv")
        for method in MODEL_METHODS:
            cells = []
            for n in (old, None):
                r = compute_maps(s, method=method, mask=b.brain, aif_mask=b.aif_mask,
                                 baseline_frames=n)  # fmt: skip
                e = 100 * (region_means(b, r.maps.cbv) / truth - 1)
                cells.append(
                    f"{s.times[r.baseline_frames - 1]:.1f} s | {e.min():+.1f} to {e.max():+.1f}"
                )
            lines.append(f"| {aif} | {method} | " + " | ".join(cells) + " |")
    return lines + [""]


def bound_section(n: int) -> list[str]:
    """Sub-second boxes at 3 HU: the old 0.02 s lower MTT bound against the 2 s one."""
    regions = [Region(60.0, 4.0), Region(25.0, 4.8)]
    lines = [
        "## Box NLR at realistic noise: the lower MTT bound",
        "",
        f"Box residues, grey matter (CBF 60, MTT 4 s) and white matter (25, 4.8 s), {n} "
        "voxels each, 0.5 s frames, boxcar AIF. Share of voxels with MTT < 1 s; mean and "
        "median CBF over the truth.",
        "",
        "| noise HU | lower MTT bound s | GM MTT < 1 s | GM mean / median CBF | WM MTT < 1 s | "
        "WM mean / median CBF |",
        "|---|---|---|---|---|---|",
    ]
    c = simulate(regions)
    for noise in (3.0, 5.0):
        y = add_noise(np.repeat(c.tissue, n, axis=0), noise, seed=1).astype(np.float32)
        for lo in (0.02, None):
            kw = {} if lo is None else {"mtt_bounds": (lo, float(c.times[-1]))}
            f = BoxNLRModel(c.aif, c.times, **kw).fit(y)
            cells = []
            for i, reg in enumerate(regions):
                cbf, mtt = f.cbf[i * n : (i + 1) * n], f.mtt[i * n : (i + 1) * n]
                cells.append(f"{100 * np.mean(mtt < 1):.1f} %")
                cells.append(f"{np.mean(cbf) / reg.cbf:.2f} / {np.median(cbf) / reg.cbf:.2f}")
            bound = f"{lo:g}" if lo is not None else "2 (default)"
            lines.append(f"| {noise:g} | {bound} | " + " | ".join(cells) + " |")
    return lines + [""]


def tmax_section(n: int) -> list[str]:
    regions = [Region(60.0 * 4 / m, m, 0.0, s) for s in ("box", "exponential", 3.0)
               for m in (3.0, 4.0, 6.0)]  # fmt: skip
    c = simulate(regions)
    lines = [
        "## Tmax of healthy tissue",
        "",
        "No delay, no dispersion (true Tmax 0), MTT 3, 4, 6 s, box, exponential and gamma "
        f"(shape 3) residues. Range over the nine regions of Tmax noise-free and of its "
        f"median over {n} voxels at 1.5 HU (s). Definitions: `docs/accuracy.md`.",
        "",
        "| method | noise-free | 1.5 HU, medians |",
        "|---|---|---|",
    ]
    y = add_noise(np.repeat(c.tissue, n, axis=0), 1.5, seed=4).astype(np.float32)
    for method in MODEL_METHODS:
        model = METHODS[method].model(c.aif, c.times)
        t0 = model.fit(c.tissue.astype(np.float32)).tmax
        t1 = np.median(model.fit(y).tmax.reshape(len(regions), -1), axis=1)
        lines.append(f"| {method} | {t0.min():.2f} to {t0.max():.2f} | "
                     f"{t1.min():.2f} to {t1.max():.2f} |")  # fmt: skip
    return lines + [""]


def rcbf_section(n: int) -> list[str]:
    """Relative CBF of ischaemic tissue per residue shape, box-like healthy reference."""
    shapes = ("box", "exponential", 2.0, 3.0)
    regions = [Region(60.0, 4.0)]
    for shape in shapes:
        for rcbf in (0.15, 0.35, 0.6):
            cbv = 4.0 * min(1.0, 0.4 + rcbf)
            regions.append(Region(60.0 * rcbf, 60.0 * cbv / (60.0 * rcbf), 3.0, shape))
    healthy = [Region(60.0, 4.0, 0.0, s) for s in shapes]
    c = simulate(regions + healthy)
    k = len(regions)
    lines = [
        "## Relative CBF per residue shape (the core's measure)",
        "",
        "Healthy grey matter with a box residue (CBF 60, MTT 4 s) is the reference; "
        "ischaemic tissue (delay 3 s, CBV falling less than CBF) of true rCBF 0.15, 0.35 and "
        "0.6 with box, exponential and gamma (shape 2, 3) residues. Cells: median rCBF "
        f"(medians over {n} voxels per region once noisy); last column: healthy grey matter "
        "of each shape, CBF over the truth. *nlr-box*: the NLR with the box alone (the model "
        "before issue 12).",
        "",
        "| noise HU | method | " + " | ".join(
            f"{s} {v:g}" for s in ("box", "exp", "γ2", "γ3") for v in (0.15, 0.35, 0.6)
        ) + " | healthy box / exp / γ2 / γ3 |",
        "|---|---|" + "---|" * 13,
    ]  # fmt: skip
    for noise in NOISES:
        reps = n if noise else 1
        y = np.repeat(c.tissue, reps, axis=0)
        if noise:
            y = add_noise(y, noise, seed=5)
        for method in ("nlr-box", *MODEL_METHODS):
            if method == "nlr-box":
                model = BoxNLRModel(c.aif, c.times, shapes=())
            else:
                model = METHODS[method].model(c.aif, c.times)
            cbf = np.median(model.fit(y.astype(np.float32)).cbf.reshape(-1, reps), axis=1)
            rel = cbf[1:k] / cbf[0]
            cells = [f"{v:.2f}" for v in rel]
            hl = " / ".join(f"{v:.2f}" for v in cbf[k:] / 60.0)
            lines.append(f"| {noise:g} | {method} | " + " | ".join(cells) + f" | {hl} |")
    return lines + [""]


def neighbourhood_section(side: int) -> list[str]:
    """NLR CBF per residue shape with each region a patch of ``side`` x ``side`` voxels of
    1 mm (healthy box tissue beside ischaemic tissue delayed 3 s): the shape chosen on the
    neighbourhood (``fit`` given the voxel size) against voxel by voxel."""
    shapes = ("box", "exponential", 2.0, 3.0)
    regions = [Region(60.0, 4.0)]
    regions += [Region(60.0 * 0.35, 4.0 * 0.75 / 0.35, 3.0, s) for s in shapes]
    lines = [
        "## NLR residue shape chosen on the neighbourhood",
        "",
        f"Each region a patch of {side} x {side} voxels of 1 mm in one slice: healthy grey "
        "matter (box, CBF 60, MTT 4 s) and ischaemic tissue of true rCBF 0.35 (delay 3 s, "
        "CBV 3 mL/100 g) with box, exponential and gamma (shape 2, 3) residues. Cells: median "
        "CBF over the truth. *voxel*: each voxel's shape chosen on its own curve; "
        "*neighbourhood: shape*: `fit(..., spacing=...)`, as the maps step runs it (a voxel "
        "left with the box takes the shape chosen on its neighbourhood's pooled curve); "
        "*neighbourhood: shape and MTT*: the option `neighbourhood_mtt=True` (also the "
        "neighbourhood's MTT, `_residues.adopt_mtt`; off by default, see `ctpmaps.perfusion."
        "boxnlr`).",
        "",
    ]
    labels = ["healthy"] + [f"rCBF 0.35 {s}" for s in ("box", "exp", "γ2", "γ3")]
    return lines + _patch_table(regions, labels, side, on_bound=False)


def low_flow_section(side: int) -> list[str]:
    """NLR CBF of low-flow tissue (patches as `neighbourhood_section`), with the share of
    voxels whose MTT ends on the lower bound: voxel by voxel and as the maps step fits."""
    regions = [
        Region(25.0, 4.8),
        Region(8.0, 12.0, 3.0, "box"),
        Region(8.0, 12.0, 3.0, "exponential"),
        Region(15.0, 8.0, 2.0, "box"),
    ]
    lines = [
        "## NLR on low-flow tissue: the neighbourhood's MTT where a fit ends on the bound",
        "",
        f"Patches of {side} x {side} voxels of 1 mm as above: healthy white matter (box, CBF "
        "25, MTT 4.8 s), ischaemic tissue of CBF 8 and MTT 12 s (delay 3 s; box, exponential) "
        "and of CBF 15, MTT 8 s (delay 2 s, box). Cells: median CBF over the truth, and in "
        "brackets the share of voxels whose MTT is on the lower bound (2 s). *neighbourhood*: "
        "a voxel whose own fit ends on the bound takes the MTT and shape of its neighbourhood "
        "(`_residues.borrow_mtt`); rows as in the section above.",
        "",
    ]
    labels = ["healthy WM", "CBF 8 box", "CBF 8 exp", "CBF 15 box"]
    return lines + _patch_table(regions, labels, side, on_bound=True)


def heterogeneity_section(side: int) -> list[str]:
    """NLR CBF where MTT varies from voxel to voxel within a neighbourhood: each patch of
    ``side`` x ``side`` voxels its own tissue, every voxel its own MTT (log-normal around
    the tissue's), fitted alone (no other patch in the pool), voxel by voxel and with the
    voxel size given (the shape chosen on the pooled curve)."""
    rng = np.random.default_rng(3)
    tissues = (("GM", 55.0, 3.8), ("WM", 22.0, 4.8))
    shapes = ("box", 32.0, 12.0)
    cvs = (0.0, 0.15, 0.3)
    lines = [
        "## NLR residue shape on a neighbourhood whose MTT varies",
        "",
        f"Patches of {side} x {side} voxels of 1 mm, each fitted alone: grey matter (CBF 55, "
        "MTT 3.8 s) and white matter (CBF 22, MTT 4.8 s) with box and gamma (shape 32, 12) "
        "residues, delay 0.5 s, every voxel's MTT drawn log-normal around the tissue's with the "
        "coefficient of variation CV, 1.2 and 3 HU. Cells: median CBF over the truth and, in "
        "brackets, a voxel's mean absolute CBF error (fraction of its truth): voxel by voxel / "
        "the shape chosen on the neighbourhood (as the maps step runs it) / shape and MTT from "
        "the neighbourhood (`neighbourhood_mtt=True`). A pooled curve averages residues of "
        "different MTTs, so it looks more dispersed than any of them; the shape chosen on it "
        "is then fitted to each voxel's own curve, and its MTT, where taken, misses each "
        "voxel's own by about the CV.",
        "",
        "| tissue | CV | noise HU | "
        + " | ".join(f"{s:g}" if isinstance(s, float) else s for s in shapes)
        + " |",
        "|---|---|---|" + "---|" * len(shapes),
    ]
    for name, cbf, mtt0 in tissues:
        for cv in cvs:
            rows = {noise: [] for noise in NOISES[1:]}
            for shape in shapes:
                mtt = mtt0 * np.exp(cv * rng.standard_normal(side * side) - cv**2 / 2)
                c = simulate([Region(cbf, float(m), 0.5, shape) for m in mtt])
                truth, fits = c.truth("cbf"), _fits(c)
                for noise, cells in rows.items():
                    frames = add_noise(c.tissue.reshape(side, side, 1, -1), noise, seed=7)
                    frames = frames.astype(np.float32)
                    ratios = [m.fit(frames, **kw).cbf.ravel() / truth for _, m, kw in fits]
                    cells.append(" / ".join(_median_error(r) for r in ratios))
            for noise, cells in rows.items():
                lines.append(f"| {name} | {cv:g} | {noise:g} | " + " | ".join(cells) + " |")
    return lines + [""]


def _median_error(r: np.ndarray) -> str:
    """Median of estimate / truth ``r`` and, in brackets, the mean absolute error."""
    return f"{np.median(r):.2f} ({np.abs(r - 1).mean():.2f})"


def neighbourhood_mtt_section(side: int) -> list[str]:
    """Healthy grey and white matter (box residues) at realistic noise, each a patch of
    ``side`` x ``side`` voxels fitted alone, the two side by side and interleaved in
    stripes of 4 mm: median CBF and a voxel's mean absolute CBF error, voxel by voxel,
    with the shape alone and with the shape and MTT taken from the neighbourhood."""
    gm, wm = Region(60.0, 4.0), Region(25.0, 4.8)
    labels = FIT_LABELS
    lines = [
        "## The neighbourhood's MTT: the NLR's noise bias",
        "",
        "Healthy grey matter (box, CBF 60, MTT 4 s) and white matter (box, CBF 25, MTT 4.8 s), "
        f"patches of {side} x {side} voxels of 1 mm, each fitted alone, the two side by side "
        "(one study, the pool crossing their border) and one patch of both in alternate "
        "stripes 4 mm wide (as cortex and white matter interleave). Cells: median CBF over the "
        "truth and, in brackets, a voxel's mean absolute CBF error (fraction of its truth), "
        "GM / WM. At low "
        "contrast a voxel's fitted MTT is biased short (a shorter box or a less dispersed shape "
        "follows the noise more closely) and its CBF high; with the neighbourhood's MTT and "
        "shape, which a voxel takes unless its curve rejects them by 9.2 noise variances "
        "of SSE (`_residues.adopt_mtt`, `ADOPT_PENALTY`: the 1 % tail of a chi-square of "
        "the two parameters the neighbourhood fixes), the bias and the spread fall. Side by "
        "side, the pooled curves near the border mix grey and white matter, and white "
        "matter keeps part of its bias; "
        "in stripes every pool mixes them, and each tissue takes the mixture's MTT: grey "
        "matter reads low, white matter high. An option (`neighbourhood_mtt=True`), off by "
        "default: on the phantom the neighbourhood's MTT read grey matter 10 % long "
        '(`ctpmaps.perfusion.boxnlr`, "MTT from the neighbourhood").',
        "",
        "| noise HU | layout | " + " | ".join(labels) + " |",
        "|---|---|" + "---|" * len(labels),
    ]
    # per layout, its studies: the curves, each voxel's region and the fits, made once
    layouts = {}
    for layout, groups, stripes in (
        ("alone", ([gm], [wm]), False),
        ("side by side", ([gm, wm],), False),
        ("stripes of 4 mm", ([gm, wm],), True),
    ):
        layouts[layout] = []
        for regions in groups:
            c = simulate(regions)
            if stripes:  # rows of 4 voxels alternating
                lab = np.repeat((np.arange(2 * side) // 4) % 2, side)
            else:
                lab = np.repeat(np.arange(len(regions)), side * side)
            layouts[layout].append((c, lab, _fits(c)))
    for noise in NOISES[1:]:
        for layout, studies in layouts.items():
            results = {label: [] for label in labels}
            for c, lab, fits in studies:
                n = int(lab.max()) + 1
                frames = c.tissue[lab].reshape(n * side, side, 1, -1)
                frames = add_noise(frames, noise, seed=7).astype(np.float32)
                truth = c.truth("cbf")[lab]
                for label, model, kw in fits:
                    r = model.fit(frames, **kw).cbf.ravel() / truth
                    results[label].extend(r[lab == k] for k in range(n))
            cells = [" / ".join(_median_error(r) for r in rs) for rs in results.values()]
            lines.append(f"| {noise:g} | {layout} | " + " | ".join(cells) + " |")
    return lines + [""]


def dispersion_section() -> list[str]:
    """What an NLR can tell of dispersed tissue: exponential residues (CBF 21, MTT 8 s,
    delay 3 s) behind exponential transport of 0-3 s, fitted by the NLR as it is and by
    the NLR given the true transport (its AIF passed through the kernel); CBF against the
    truth (the residue's height before transport) and against the effective impulse
    response's maximum, and the two fits' SSE at 0 and 0.3 HU (a pooled neighbourhood's
    noise, 1,000 curves)."""
    taus = (0.0, 1.0, 2.0, 3.0)
    regions = [Region(21.0, 8.0, 3.0, "exponential", tau) for tau in taus]
    c = simulate(regions)
    tf = np.arange(c.fine_aif.size) * FINE_DT
    peak = np.array([impulse_response(tf, r).max() for r in regions])  # 1 / unit CBF
    lines = [
        "## Dispersed tissue: transport and residue shape cannot be told apart",
        "",
        "Exponential residues (CBF 21, MTT 8 s, delay 3 s) behind an exponential transport "
        "of time constant tau. *NLR*: the fit as the maps step runs it (box or gamma shapes, "
        "no transport); *NLR, true transport*: the same fit with the AIF passed through the "
        "true kernel. CBF / truth (the residue's height before transport, the phantoms' "
        "CBF) and CBF / the effective impulse response's maximum (what a deconvolution "
        "sees); mean SSE per curve (HU²) noise-free and at 0.3 HU (1,000 curves, about a "
        "pooled neighbourhood's noise at 3 HU per voxel).",
        "",
        "| tau s | effective max / CBF | NLR: CBF / truth | CBF / effective max | SSE 0 / 0.3 HU "
        "| NLR, true transport: CBF / truth | SSE 0 / 0.3 HU |",
        "|---|---|---|---|---|---|---|",
    ]
    noise = 0.3
    drops, reads = [], []
    for i, tau in enumerate(taus):
        aif_fine = convolve(c.fine_aif, exponential_kernel(tf, tau), FINE_DT)
        aif_t = np.interp(c.times, tf, aif_fine)
        noisy = add_noise(np.repeat(c.tissue[i : i + 1], 1000, axis=0), noise, seed=3)
        cells = []
        for aif in (c.aif, aif_t):
            model = METHODS["nlr"].model(aif, c.times)
            clean = model.fit(c.tissue[i : i + 1].astype(np.float32))
            rough = model.fit(noisy.astype(np.float32))
            sse = (float(clean.params["sse"][0]), float(np.mean(rough.params["sse"])))
            cells.append((float(clean.cbf.ravel()[0]) / 21.0, sse))
        (own, sse_own), (true, sse_true) = cells
        drops.append(sse_own[1] - sse_true[1])
        reads.append(abs(own / peak[i] - 1))
        lines.append(
            f"| {tau:g} | {peak[i]:.2f} | {own:.2f} | {own / peak[i]:.2f} | "
            f"{sse_own[0]:.2f} / {sse_own[1]:.2f} | {true:.2f} | "
            f"{sse_true[0]:.2f} / {sse_true[1]:.2f} |"
        )
    variance = noise**2
    lines += [
        "",
        f"At {noise:g} HU the true transport lowers the SSE by at most {max(drops):.2f} HU² "
        f"per curve, {max(drops) / variance:.1f} noise variances ({variance:.2f} HU²; the "
        "NLR's shape choice asks for 4): the tissue curve hardly says how much of its shape "
        "is transport and how much residue, so the residue's height before transport is not "
        "identified without a prior (e.g. transport growing with delay); the NLR reads the "
        f"effective response's maximum (within {100 * max(reads):.0f} %).",
        "",
    ]
    return lines


#: Residue shapes of the truth in `shapes_section`: the box, gamma shapes between the
#: NLR's, uniform spreads of transit times between its own, the triangular residue.
TRUTH_SHAPES = ("box", 60.0, 20.0, 8.0, 4.0, 1.5, "exponential", "uniform:0.25",
                "uniform:0.4", "uniform:0.5", "uniform:0.6", "uniform:0.75", "uniform:0.9",
                "triangular")  # fmt: skip


def shapes_section() -> list[str]:
    """Noise-free residues of shapes between and beyond the NLR's (`TRUTH_SHAPES`), MTT
    3, 5 and 8 s, onsets 0, 0.3 and 0.7 s: the CBF error of the box alone, of the box and
    gamma shapes, and of the NLR as shipped (gamma shapes and uniform spreads)."""
    regions = [Region(40.0, mtt, d, k) for k in TRUTH_SHAPES for mtt in (3.0, 5.0, 8.0)
               for d in (0.0, 0.3, 0.7)]  # fmt: skip
    c = simulate(regions)
    shapes = METHODS["nlr"].model(c.aif, c.times).shapes
    fitters = {
        "box alone": (),
        "box and gamma shapes": tuple(k for k in shapes if k > 0),
        "NLR (shipped)": shapes,
    }
    per = len(regions) // len(TRUTH_SHAPES)
    errors = {}
    for label, sh in fitters.items():
        fit = METHODS["nlr"].model(c.aif, c.times, shapes=sh).fit(c.tissue.astype(np.float32))
        errors[label] = 100 * np.abs(fit.cbf.ravel() / c.truth("cbf") - 1).reshape(-1, per)
    lines = [
        "## Residue shapes between and beyond the NLR's",
        "",
        "Noise-free curves (0.5 s frames) of residues of every shape below, MTT 3, 5 and 8 s, "
        "onsets 0, 0.3 and 0.7 s: median (largest) |CBF error| in % over the 9 curves of each "
        f"shape. The NLR's shapes: {', '.join(f'{k:g}' for k in shapes)} (gamma transit-time "
        "shapes > 0, transit times spread uniformly by |k| of the MTT about it < 0). "
        "*uniform W*: transit times uniform over (1 +- W) MTT, a trapezoidal residue; "
        "*triangular*: W = 1, the residue falls from its onset (Kudo et al. 2013).",
        "",
        "| residue | " + " | ".join(fitters) + " |",
        "|---|" + "---|" * len(fitters),
    ]
    for i, k in enumerate(TRUTH_SHAPES):
        name = k.replace(":", " ") if isinstance(k, str) else f"gamma {k:g}"
        cells = [f"{np.median(e[i]):.1f} ({e[i].max():.1f})" for e in errors.values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines + [""]


SPACING = (1.0, 1.0, 5.0)


#: The NLR fits compared (`_fits`): voxel by voxel; the shape chosen on the neighbourhood
#: (as the maps step runs it); shape and MTT from the neighbourhood (``neighbourhood_mtt``).
FIT_LABELS = ("voxel", "neighbourhood: shape", "neighbourhood: shape and MTT")


def _fits(c):
    """(label, NLR model, keywords of ``fit``) of each of `FIT_LABELS` for the curves ``c``."""
    nlr = METHODS["nlr"].model
    models = (nlr(c.aif, c.times), nlr(c.aif, c.times), nlr(c.aif, c.times, neighbourhood_mtt=True))
    kws = ({}, {"spacing": SPACING}, {"spacing": SPACING})
    return tuple(zip(FIT_LABELS, models, kws, strict=True))


def _patch_table(regions, labels, side: int, *, on_bound: bool) -> list[str]:
    """Rows per noise level of the NLR's median CBF over the truth per region (a patch of
    ``side`` x ``side`` voxels each), voxel by voxel and with the voxel size given."""
    c = simulate(regions)
    lines = [
        "| noise HU | shape chosen on | " + " | ".join(labels) + " |",
        "|---|---|" + "---|" * len(labels),
    ]
    truth, fits = c.truth("cbf"), _fits(c)
    for noise in NOISES[1:]:
        frames = np.repeat(np.repeat(c.tissue[:, None, None, :], side, axis=0), side, axis=1)
        frames = add_noise(frames, noise, seed=7).astype(np.float32)
        for label, model, kw in fits:
            fit = model.fit(frames, **kw)
            cbf = np.median(fit.cbf.reshape(len(regions), -1), axis=1) / truth
            bound = np.mean(fit.mtt.reshape(len(regions), -1) <= MTT_MIN + 1e-3, axis=1)
            cells = [
                f"{v:.2f} ({100 * b:.0f} %)" if on_bound else f"{v:.2f}"
                for v, b in zip(cbf, bound, strict=True)
            ]
            lines.append(f"| {noise:g} | {label} | " + " | ".join(cells) + " |")
    return lines + [""]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voxels", type=int, default=400, help="noisy voxels per region (400)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "accuracy_forward.md")
    args = ap.parse_args()
    t0 = time.perf_counter()
    body = (
        grid_section()
        + baseline_section()
        + bound_section(1000)
        + tmax_section(200)
        + rcbf_section(args.voxels)
        + neighbourhood_section(24)
        + low_flow_section(24)
        + neighbourhood_mtt_section(24)
        + heterogeneity_section(24)
        + dispersion_section()
        + shapes_section()
    )
    head = [
        "# Accuracy on the minimal forward model of the tests",
        "",
        f"Made by `python benchmarks/accuracy_forward.py --voxels {args.voxels}` on "
        f"{datetime.date.today()} ({platform.platform()}, {os.cpu_count()} cores, "
        f"{time.perf_counter() - t0:.0f} s).",
        "",
        "The curves come from `tests/forward/forward_model.py`: a forward model written apart "
        "from the project (boxcar, double-peak and gamma-variate AIFs; box, exponential, "
        "gamma transit-time, uniform transit-time and triangular residues; an exponential "
        "transport kernel; kappa 0.55/0.75, rho 1.05; convolution on a 0.02 s grid, sampled "
        "at 0.5 s frames; Tmax truth: the first time the impulse response reaches its "
        "maximum). A test checks it imports nothing of ctpmaps. The grid, baseline, MTT "
        "bound, Tmax, relative CBF, neighbourhood and low-flow checks also run as tests in "
        "`tests/forward/`; the sections on an MTT that varies "
        "within a neighbourhood and on dispersed tissue measure known limits.",
        "",
    ]
    from ctpmaps.io.atomic import atomic_path

    with atomic_path(args.out) as tmp:
        tmp.write_text("\n".join(head + body))
    print("\n".join(head + body))
    return 0


if __name__ == "__main__":
    sys.exit(main())

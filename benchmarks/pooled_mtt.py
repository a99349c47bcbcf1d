"""Why the NLR's neighbourhood MTT reads grey matter long on the phantom: one patient, taken
apart (issue 12; `ctpmaps.perfusion.boxnlr`, "MTT from the neighbourhood").

The pooled fits (`ctpmaps.perfusion._residues.pooled_fits`: the curves around each voxel
averaged and fitted) give the MTT a voxel takes with ``neighbourhood_mtt=True``. Each row
is the median, over healthy box-like voxels of a tissue (outside the true hypoperfusion and
oligaemia), of that MTT over the voxel's true MTT; the chain runs with its defaults (no
motion correction: the phantom here has none to correct), once on the noise-free frames,
once on the noisy ones, once on the noisy ones unfiltered. Then the pooling is redone with
one thing changed at a time: one delay bin for all curves; the noise-free curves pooled in
place of the noisy ones, with the noisy study's AIF and with the noise-free study's. Last,
the AIF alone: the noise-free tissue fitted (each voxel's own fit, the maps' MTT) with the
noise-free study's AIF, the noisy study's, and the noise-free mean of the noisy study's
AIF voxels (the same voxels, without their noise).

    python benchmarks/pooled_mtt.py [--seed 1000] [--matrix 512]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from lesion_accuracy import TISSUES


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--matrix", type=int, default=512)
    args = ap.parse_args()
    logging.disable(logging.WARNING)

    from ctpmaps.perfusion import METHODS, _residues, boxnlr
    from ctpmaps.perfusion.concentration import enhancement
    from ctpmaps.phantom import PhantomConfig, acquisition_preset, simulate_patient
    from ctpmaps.pipeline import run_study

    t0 = time.perf_counter()
    cfg = PhantomConfig(acquisition=acquisition_preset("seed", matrix=args.matrix))
    ph = simulate_patient(cfg, seed=args.seed, normal=False, patient_id="PM", keep_noise_free=True)
    truth, noisy = ph.truth, ph.study
    clean = dataclasses.replace(noisy, frames=truth.noise_free.astype(np.float32))
    healthy = truth.masks["brain"] & ~truth.masks["hypoperfusion"] & ~truth.masks["oligaemia"]
    box_like = healthy & (truth.residue_label == 1)

    seen: dict = {}
    pooled_fits = boxnlr.pooled_fits

    def spy(model, curves, layout, spacing, sigma_mm, delay, every=None):
        seen.update(model=model, curves=curves, layout=layout, spacing=spacing,
                    sigma=sigma_mm, delay=delay)  # fmt: skip
        return pooled_fits(model, curves, layout, spacing, sigma_mm, delay, every=every)

    def chain(study, **options):
        boxnlr.pooled_fits = spy
        try:
            with tempfile.TemporaryDirectory() as tmp:
                r = run_study(study, Path(tmp) / "o", method="nlr", dicom=False, report=False,
                              motion=False, lesions=False, **options)  # fmt: skip
        finally:
            boxnlr.pooled_fits = pooled_fits
        return r, dict(seen)

    def ratio(mtt_of_voxel: np.ndarray) -> str:
        cells = []
        for name, code in TISSUES.items():
            sel = box_like & (truth.tissue == code) & np.isfinite(mtt_of_voxel)
            cells.append(f"{name} {np.median(mtt_of_voxel[sel] / truth.maps['mtt'][sel]):.3f}")
        return "  ".join(cells)

    def pooled(s, curves=None, delay=None, model=None) -> np.ndarray:
        fit = _residues.pooled_fits(
            model or s["model"], s["curves"] if curves is None else curves, s["layout"],
            s["spacing"], s["sigma"], s["delay"] if delay is None else delay,
        )  # fmt: skip
        return s["layout"].unflatten(fit["mtt"])

    rows = []
    r_clean, s_clean = chain(clean)
    rows.append(("noise-free frames", ratio(pooled(s_clean))))
    r_noisy, s_noisy = chain(noisy)
    rows.append(("noisy frames (the chain)", ratio(pooled(s_noisy))))
    rows.append(
        ("noisy, one delay bin", ratio(pooled(s_noisy, delay=np.zeros_like(s_noisy["delay"]))))
    )
    _, s_raw = chain(noisy, filter=False)
    rows.append(("noisy, no filter", ratio(pooled(s_raw))))

    n_base = r_noisy.maps.baseline_frames
    enh = enhancement(clean.frames, clean.times, n_baseline=n_base)
    lay = s_noisy["layout"]
    flat = enh.reshape(-1, enh.shape[-1])[lay.index].astype(s_noisy["curves"].dtype)
    rows.append(("noisy chain, noise-free curves pooled", ratio(pooled(s_noisy, curves=flat))))
    nlr = METHODS["nlr"].model
    model_clean_aif = nlr(r_clean.maps.aif.curve, clean.times)
    rows.append(("  the same, noise-free study's AIF",
                 ratio(pooled(s_noisy, curves=flat, model=model_clean_aif))))  # fmt: skip

    # The AIF alone: noise-free tissue, each voxel's own fit.
    aif = r_noisy.maps.aif
    vox = tuple(aif.voxels.T)
    enh_noisy = enhancement(noisy.frames, noisy.times, n_baseline=n_base)
    spill = enh_noisy[vox].mean(axis=0) - aif.curve / aif.scale  # the tissue removed, scaled
    same_voxels = (enh[vox].mean(axis=0) - spill) * aif.scale
    curves, layout = s_clean["curves"], s_clean["layout"]
    for label, curve in (("noise-free study's AIF", r_clean.maps.aif.curve),
                         ("noisy study's AIF", aif.curve),
                         ("its voxels without their noise", same_voxels)):  # fmt: skip
        fit = nlr(np.asarray(curve), clean.times).fit_gathered(
            curves, layout, spacing=clean.spacing
        )
        rows.append((f"noise-free tissue, own fits, {label}", ratio(fit.maps().mtt)))

    baseline_sd = float(np.std(aif.curve[:n_base], ddof=1))
    print(
        f"Patient seed {args.seed}, matrix {args.matrix}: median over healthy box-like voxels "
        f"of MTT / true MTT (GM, WM); AIF baseline noise {baseline_sd:.1f} HU, peak "
        f"{float(np.max(aif.curve)):.0f} HU ({time.perf_counter() - t0:.0f} s)\n"
    )
    print("| pooled fits (neighbourhood MTT) or own fits | MTT / true |\n|---|---|")
    for label, cells in rows:
        print(f"| {label} | {cells} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

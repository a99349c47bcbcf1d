"""Does a less noisy AIF fix the NLR's CBF? The automatic AIF averaged over more voxels,
on phantom patients at the seed's matrix (issue 12; `ctpmaps.perfusion.boxnlr`, "MTT from
the neighbourhood").

A noisy AIF biases a least-squares fit of ``CBF . (AIF * R)`` (an errors-in-variables
bias): `benchmarks/pooled_mtt.py` finds half of the neighbourhood MTT's long bias there.
The automatic AIF is the mean of `ctpmaps.perfusion.aif.default_aif_voxels` voxels (100 at
0.49 mm); here that number is multiplied by each ``--factors`` value and the chain is run
again (`ctpmaps.pipeline.run_study` with its defaults, no motion correction: the phantom
has none to correct; once per ``--methods`` entry, ``nlr+nb`` with ``neighbourhood_mtt``).
Each row: the AIF's voxels, its baseline noise (HU, before the partial-volume scale), its
peak (HU, the same), the share of tissue removed from it (`tissue_spill`), the median of
CBF / truth - 1 per tissue and residue class (`lesion_accuracy.map_stats`, all brain voxels
of the class) and the root-mean-square CBF error inside the brain (mL/100 g/min) beside a
constant predictor's (the true mean).

    python benchmarks/aif_voxels.py [--seeds 1000 1001 1002] [--factors 1 4 8]
        [--methods nlr nlr+nb] [--matrix 512]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import machine
from lesion_accuracy import RESIDUES, TISSUES, map_stats


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1000, 1001, 1002])
    ap.add_argument("--factors", type=float, nargs="+", default=[1.0, 4.0, 8.0])
    ap.add_argument("--methods", nargs="+", default=["nlr", "nlr+nb"])
    ap.add_argument("--matrix", type=int, default=512)
    args = ap.parse_args()
    logging.disable(logging.WARNING)

    import ctpmaps.perfusion.maps as maps_module
    from ctpmaps.phantom import PhantomConfig, acquisition_preset, simulate_patient
    from ctpmaps.pipeline import run_study

    default = maps_module.default_aif_voxels
    cells = [(t, r) for t in TISSUES for r in RESIDUES]
    print(f"{machine()}; matrix {args.matrix}\n")
    print("| seed | method | x voxels | AIF voxels | noise HU | peak HU | tissue | "
          + " | ".join(f"CBF {t} {r}" for t, r in cells) + " | RMSE (const) |")  # fmt: skip
    print("|---" * (8 + len(cells)) + "|")
    t0 = time.perf_counter()
    for seed in args.seeds:
        cfg = PhantomConfig(acquisition=acquisition_preset("seed", matrix=args.matrix))
        ph = simulate_patient(cfg, seed=seed, normal=False, patient_id="P")
        for method in args.methods:
            for factor in args.factors:
                # The one place the chain takes the AIF's size from: scaled for this run.
                maps_module.default_aif_voxels = lambda spacing, f=factor: max(
                    4, int(round(default(spacing) * f))
                )
                try:
                    with tempfile.TemporaryDirectory() as tmp:
                        r = run_study(
                            ph.study, Path(tmp) / "o", method="nlr", dicom=False,
                            report=False, motion=False, lesions=False,
                            neighbourhood_mtt=method == "nlr+nb",
                        )  # fmt: skip
                finally:
                    maps_module.default_aif_voxels = default
                aif = r.maps.aif
                noise = float(np.std(aif.curve[: r.maps.baseline_frames], ddof=1)) / aif.scale
                s = map_stats(r.maps.maps, r.maps.brain, ph.truth)
                bias = [s[f"bias_cbf_{t}_{rn}"] for t, rn in cells]
                print(
                    f"| {seed} | {method} | {factor:g} | {len(aif.voxels)} | {noise:.2f} | "
                    f"{float(aif.curve.max()) / aif.scale:.0f} | "
                    f"{100 * aif.tissue_fraction:.0f} % | "
                    + " | ".join("–" if b is None else f"{100 * b:+.1f} %" for b in bias)
                    + f" | {s['cbf_rmse']:.1f} ({s['cbf_rmse_const']:.1f}) |",
                    flush=True,
                )
    print(f"\n{time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

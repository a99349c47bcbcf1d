"""OSIPI's DSC deconvolution reference: every method, case by case, beside OSIPI's L-curve.

Runs sSVD, bSVD, oSVD, the NLR and, for comparison, the NLR with the box alone (the seed's
model) with hematocrit factor and density 1 (OSIPI's
convention ``C_tis = dt (C_aif ⊛ R)``, ``CBF = 6000 max(R)``) on the 14 cases of
``../shared/reference/osipi_dsc/dsc_data.csv``, applies OSIPI's pass rule (CBV rtol 0.1,
atol 1; CBF rtol 0.1, atol 15) and prints a Markdown table with OSIPI's own reference
results (Tikhonov with L-curve, ``lcurve_reference_results.csv``) side by side; writes it
to ``docs/osipi.md``::

    .venv/bin/python benchmarks/osipi_table.py [--shared ../shared] [--out docs/osipi.md]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import functools
import os
import sys
import time
from pathlib import Path

import numpy as np

from ctpmaps.perfusion import METHODS as _ALL
from ctpmaps.perfusion import BoxNLRModel
from ctpmaps.perfusion.osipi import osipi_passes as passes
from ctpmaps.perfusion.osipi import read_osipi_cases as read_cases

#: Model classes in table order; "nlr box" is the NLR with the box alone.
METHODS = {name: _ALL[name].model for name in ("ssvd", "bsvd", "osvd", "nlr")}
METHODS["nlr box"] = functools.partial(BoxNLRModel, shapes=())
ROOT = Path(__file__).resolve().parents[1]


def read_lcurve(folder: Path) -> dict[str, dict]:
    """OSIPI's L-curve results by case label."""
    with open(folder / "lcurve_reference_results.csv", newline="") as fh:
        return {r["label"]: r for r in csv.DictReader(fh)}


def run(cases: list[dict]) -> tuple[dict, dict]:
    """Measured (cbv, cbf, onset s, residue shape; the last two the NLR's alone, else NaN)
    per method and case, and seconds per curve per method (model construction included:
    one model per curve, as each case has its own AIF)."""
    results: dict[str, list[tuple[float, float, float, float]]] = {}
    seconds = {}
    for name, cls in METHODS.items():
        c = cases[0]  # warm-up: imports, BLAS threads
        cls(c["aif"], c["times"], hematocrit_factor=1.0, density=1.0).fit(c["tissue"][None])
        start = time.perf_counter()
        out = []
        for c in cases:
            fit = cls(c["aif"], c["times"], hematocrit_factor=1.0, density=1.0).fit(
                c["tissue"][None]
            )
            onset = float(fit.delay[0]) if name == "nlr" else np.nan
            shape = float(fit.params["shape"][0]) if name == "nlr" else np.nan
            out.append((float(fit.cbv[0]), float(fit.cbf[0]), onset, shape))
        seconds[name] = (time.perf_counter() - start) / len(cases)
        results[name] = out
    return results, seconds


def table(cases: list[dict], lcurve: dict, results: dict, seconds: dict, command: str) -> str:
    """The Markdown report."""
    lines = [
        "# OSIPI DSC deconvolution reference",
        "",
        f"Made {datetime.date.today().isoformat()} by `{command}` (ctpmaps, "
        "`benchmarks/osipi_table.py`).",
        "",
        "Data: OSIPI DCE-DSC-MRI Code Collection, `test/DSCmodels/data/dsc_data.csv` "
        "(Apache-2.0), 14 curve pairs simulated with arthur-chakwizira/BezierCurveDeconvolution "
        "(GPL-3.0): gamma transit-time distribution (shape 3), no delay, no dispersion, SNR 200, "
        "161 samples 1.243 s apart. Reference results: OSIPI's Tikhonov/L-curve method "
        "(OSIPI DCE-DSC-MRI_TestResults). Units: CBV mL/100 mL, CBF mL/100 mL/min; every "
        "method runs with hematocrit factor and density 1, OSIPI's convention "
        "(`C_tis = dt (C_aif ⊛ R)`, `CBF = 6000 max(R)`, `CBV = 100 ∫C_tis / ∫C_aif`).",
        "",
        "Pass rule (OSIPI's `assert_allclose`): |measured − reference| ≤ atol + rtol·|reference|"
        ", CBV rtol 0.1 atol 1, CBF rtol 0.1 atol 15; a case passes when both do.",
        "",
        "## Pass counts",
        "",
        "| method | passed | s per curve |",
        "|---|---|---|",
    ]
    counts = {}
    for name in METHODS:
        ok = [
            passes(v, c["cbv"], "cbv") and passes(f, c["cbf"], "cbf")
            for (v, f, *_), c in zip(results[name], cases, strict=True)
        ]
        counts[name] = ok
        lines.append(f"| {name} | {sum(ok)}/{len(ok)} | {seconds[name]:.4f} |")
    lc_ok = [
        passes(float(lcurve[c["label"]]["cbv_meas"]), c["cbv"], "cbv")
        and passes(float(lcurve[c["label"]]["cbf_meas"]), c["cbf"], "cbf")
        for c in cases
        if c["label"] in lcurve
    ]
    lc_time = np.mean([float(r["time (us)"]) for r in lcurve.values()]) / 1e6
    lines.append(f"| OSIPI L-curve (reference) | {sum(lc_ok)}/{len(lc_ok)} | {lc_time:.2f} |")
    lines += ["", "## Per case: measured CBV / CBF (✗ = fails the rule)", ""]
    head = "| case | ref CBV | ref CBF | L-curve | " + " | ".join(METHODS)
    lines += [head + " | nlr onset s | nlr shape |", "|" + "---|" * (6 + len(METHODS))]
    for i, c in enumerate(cases):
        ref = lcurve.get(c["label"])
        lc = f"{float(ref['cbv_meas']):.2f} / {float(ref['cbf_meas']):.1f}" if ref else "n/a"
        cells = []
        for name in METHODS:
            v, f, *_ = results[name][i]
            cells.append(f"{v:.2f} / {f:.1f}" + ("" if counts[name][i] else " ✗"))
        _, _, onset, k = results["nlr"][i]
        cells += [f"{onset:+.2f}", "box" if np.isinf(k) else f"gamma {k:g}"]
        short = c["label"].replace("test_CNR200_", "").replace("_delay0_dispersion0", "")
        lines.append(
            f"| {short} | {c['cbv']:g} | {c['cbf']:g} | {lc} | " + " | ".join(cells) + " |"
        )
    lines += [
        "",
        "Every deconvolution underestimates high flows of a non-box residue; bSVD's 20 % "
        "threshold smooths most (fails CBF 70). The box alone (*nlr box*) fits a box to the "
        "gamma residue: its CBF is the box's height, below the residue's peak. The NLR fits "
        "gamma-shaped residues too, with an onset at most half a frame interval before the "
        "AIF's (`ctpmaps.perfusion.boxnlr.DELAY_MIN_FRAMES`). These curves were made by a "
        "rectangle-rule convolution at the 1.243 s frames, which puts the tissue half a "
        "frame (0.62 s) early against an AIF read between its samples: the NLR's onsets "
        "above. With the onset bounded at 0 the two highest flows (MTT 3.4-4 s) took the "
        "exponential and read 40 % high, and a limit on the shapes of short residues kept "
        "them within the rule at the price of dispersed residues read 41-49 % low at 1.5-2 s "
        "frames elsewhere (`docs/accuracy_dro.md`); it is gone. The NLR's shape here is the "
        "exponential (gamma 1) where the truth's is 3, and its high flows read high, within "
        "the rule: on these discretely convolved curves the shapes are not told apart as on "
        "curves convolved on a fine grid (`docs/accuracy_forward.md`).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "osipi.md")
    args = parser.parse_args()
    folder = args.shared / "reference" / "osipi_dsc"
    if not (folder / "dsc_data.csv").is_file():
        sys.exit(f"{folder / 'dsc_data.csv'}: not found (the OSIPI data lives in ../shared)")
    cases = read_cases(folder)
    results, seconds = run(cases)
    command = "python benchmarks/osipi_table.py" + "".join(f" {a}" for a in sys.argv[1:])
    text = table(cases, read_lcurve(folder), results, seconds, command)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, args.out)
    print(f"written: {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()

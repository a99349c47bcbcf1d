"""Calibrate the lesion thresholds of the Tmax rule per perfusion method: hypoperfusion
(Tmax above a threshold, s) and core (CBF below a fraction of the healthy reference).

Each method reads Tmax and CBF its own way (how its deconvolution treats delay, dispersion,
residue shape and noise), so each carries its own thresholds
(`ctpmaps.perfusion.Method.hypoperfusion_tmax_s` and ``core_rcbf``). This script finds,
per method, the thresholds that maximise the mean Dice against the phantom's truth masks on
a *calibration* cohort (seeds 3000 and up), disjoint from the evaluation cohort of
``benchmarks/lesion_accuracy.py`` (seeds 1000 and up). Which phantom: ``phantom_patient``
in ``lesion_accuracy.py`` (the truth masks ``core`` and ``hypoperfusion``).

Every patient goes through the whole chain once per method (`ctpmaps.pipeline.run_study`,
default options); then, on the same maps, every pair of thresholds of the sweep is applied
as the rule does it (core inside the hypoperfusion, clusters under ``min_cluster_ml``
dropped; `ctpmaps.lesion.relative_cbf` gives the relative CBF). The hypoperfusion threshold
is the one of best mean hypoperfusion Dice; the core threshold the one of best mean core
Dice with it. Mean absolute volume errors are reported beside them.

Writes ``docs/core_threshold.md`` (date, machine, command, Dice per threshold and method,
the thresholds chosen) and prints it; put the chosen values into `ctpmaps.perfusion.METHODS`
(then ``ctpmaps methods --markdown > docs/methods.md``).

Run: ``python benchmarks/calibrate_thresholds.py [--patients 12] [--matrix 512]
[--methods nlr,ssvd,bsvd,osvd] [--workers 2]``.
"""

from __future__ import annotations

import datetime
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from lesion_accuracy import _machine, cohort_arguments, phantom_patient, run_cohort

TMAX_THRESHOLDS = tuple(round(x, 2) for x in np.arange(2.0, 10.01, 0.5))
CORE_THRESHOLDS = tuple(round(x, 3) for x in np.arange(0.10, 0.401, 0.025))


def sweep(maps, brain, hemis, voxel_ml: float, criteria, truth) -> dict:
    """Dice and volume error (mL) of hypoperfusion per Tmax threshold and of the core per
    (Tmax, rCBF) pair, as `ctpmaps.lesion.segment_lesions` applies them."""
    from ctpmaps.evaluation import dice
    from ctpmaps.lesion import relative_cbf, remove_small_clusters

    rcbf, valid, _ = relative_cbf(maps, brain, hemis, criteria)
    tmax = np.asarray(maps.tmax)

    def clusters(mask):
        return remove_small_clusters(mask, voxel_ml, criteria.min_cluster_ml)

    out: dict = {}
    true_core = truth["core"].sum() * voxel_ml
    true_hypo = truth["hypoperfusion"].sum() * voxel_ml
    with np.errstate(invalid="ignore"):
        for th in TMAX_THRESHOLDS:
            hypo_raw = valid & (tmax > th)
            hypo = clusters(hypo_raw)
            out[("hypo", th)] = (
                dice(hypo, truth["hypoperfusion"]),
                hypo.sum() * voxel_ml - true_hypo,
            )
            for tc in CORE_THRESHOLDS:
                core = valid & (rcbf < tc)
                if criteria.core_within_hypoperfusion:
                    core &= hypo_raw
                core = clusters(core)
                error = core.sum() * voxel_ml - true_core
                out[("core", th, tc)] = (dice(core, truth["core"]), error)
    return out


def one_patient(i: int, matrix: int, methods: tuple[str, ...]) -> dict:
    """The threshold sweep of every method for calibration patient ``i`` (a stroke)."""
    import logging

    logging.disable(logging.WARNING)
    from ctpmaps.pipeline import run_study

    pid = f"CAL-{i + 1:03d}"
    ph = phantom_patient(3000 + i, matrix, normal=False, patient_id=pid)
    truth = ph.truth.masks
    row: dict = {"patient": pid, "residue": ph.truth.params.get("residue_shape", "-")}
    for method in methods:
        with tempfile.TemporaryDirectory() as tmp:
            r = run_study(ph.study, Path(tmp) / "out", method=method, dicom=False, report=False)
        les = r.lesions
        found = sweep(r.maps.maps, r.brain, les.hemispheres, les.voxel_ml, les.criteria, truth)
        for key, value in found.items():
            row[(method, *key)] = value
    return row


def choose(rows: list[dict], method: str) -> tuple[float, float]:
    """The hypoperfusion threshold of best mean Dice, then the core threshold of best mean
    Dice with it."""
    mean = lambda key: float(np.nanmean([r[key][0] for r in rows]))  # noqa: E731
    th = max(TMAX_THRESHOLDS, key=lambda t: mean((method, "hypo", t)))
    tc = max(CORE_THRESHOLDS, key=lambda c: mean((method, "core", th, c)))
    return th, tc


def write_doc(rows: list[dict], methods, args, elapsed: float, path: Path) -> dict:
    from ctpmaps import __version__
    from ctpmaps.perfusion import METHODS

    def mean(key, item=0, absolute=False):
        v = np.array([r[key][item] for r in rows], float)
        return float(np.nanmean(np.abs(v) if absolute else v))

    chosen = {m: choose(rows, m) for m in methods}
    lines = [
        "# Lesion thresholds per perfusion method (hypoperfusion Tmax, core relative CBF)",
        "",
        f"Generated by `benchmarks/calibrate_thresholds.py` on {datetime.date.today():%Y-%m-%d},"
        f" ctpmaps {__version__}, {_machine()}; {elapsed / 60:.1f} min with {args.workers} "
        "worker(s).",
        "",
        f"Command: `python benchmarks/calibrate_thresholds.py --patients {args.patients} "
        f"--matrix {args.matrix} --methods {','.join(methods)} --workers {args.workers}`",
        "",
        f"Calibration cohort: {len(rows)} phantom stroke patients, seeds 3000-"
        f"{2999 + len(rows)} (the evaluation cohort of `docs/accuracy_lesion.md` uses seeds "
        f"1000 and up), matrix {args.matrix}; the whole chain with default options, then the "
        "Tmax rule for every pair of thresholds (core inside the hypoperfusion, clusters under "
        "0.5 mL dropped). Hypoperfusion threshold: best mean hypoperfusion Dice; core "
        "threshold: best mean core Dice at that hypoperfusion threshold.",
        "",
        "## Chosen",
        "",
        "| method | Tmax > s | its hypo Dice | mean abs. hypo volume error mL | rCBF < | its core "
        "Dice | mean abs. core volume error mL | registry now (Tmax, rCBF) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in methods:
        th, tc = chosen[m]
        reg = METHODS[m]
        lines.append(
            f"| {m} | {th:g} | {mean((m, 'hypo', th)):.3f} | "
            f"{mean((m, 'hypo', th), 1, True):.1f} | {tc:g} | {mean((m, 'core', th, tc)):.3f} | "
            f"{mean((m, 'core', th, tc), 1, True):.1f} | {reg.hypoperfusion_tmax_s:g}, "
            f"{reg.core_rcbf:g} |"
        )
    lines += [
        "",
        "## Mean hypoperfusion Dice per Tmax threshold",
        "",
        "| Tmax > s | " + " | ".join(methods) + " |",
        "|---|" + "---|" * len(methods),
    ]
    for th in TMAX_THRESHOLDS:
        cells = [
            (f"**{mean((m, 'hypo', th)):.3f}**" if th == chosen[m][0] else
             f"{mean((m, 'hypo', th)):.3f}") for m in methods
        ]  # fmt: skip
        lines.append(f"| {th:g} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Mean core Dice per rCBF threshold, at each method's chosen Tmax threshold",
        "",
        "| rCBF < | " + " | ".join(methods) + " |",
        "|---|" + "---|" * len(methods),
    ]
    for tc in CORE_THRESHOLDS:
        cells = []
        for m in methods:
            v = mean((m, "core", chosen[m][0], tc))
            cells.append(f"**{v:.3f}**" if tc == chosen[m][1] else f"{v:.3f}")
        lines.append(f"| {tc:g} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Put the chosen values into `ctpmaps.perfusion.METHODS` and regenerate "
        "`docs/methods.md`; then measure on the evaluation cohort "
        "(`benchmarks/lesion_accuracy.py`).",
        "",
    ]
    path.write_text("\n".join(lines))
    return chosen


def main() -> int:
    args = cohort_arguments(
        __doc__, patients=12, matrix=512, methods="nlr,ssvd,bsvd,osvd", out="core_threshold.md"
    )
    methods = args.methods
    t0 = time.perf_counter()

    def show(row: dict) -> None:
        cells = []
        for m in methods:
            best = max(TMAX_THRESHOLDS, key=lambda t: row[(m, "hypo", t)][0])
            cells.append(f"{m}: best Tmax {best:g} s (Dice {row[(m, 'hypo', best)][0]:.2f})")
        print(row["patient"], "; ".join(cells), flush=True)

    rows = run_cohort(one_patient, args, show)
    from ctpmaps.io.atomic import atomic_path

    with atomic_path(args.out) as tmp:
        write_doc(rows, methods, args, time.perf_counter() - t0, tmp)
    print(args.out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Lesion accuracy on a phantom cohort: core and hypoperfusion Dice against the truth masks.

Every patient goes through the whole chain (`ctpmaps.pipeline.run_study`: motion
correction, guided bilateral filter, maps, lesions; DICOM and report switched off as they do
not change the lesions) at the default dose of the seed protocol (150 mAs, 89 frames at
0.5 s, 8 slices of 5 mm), at the seed's matrix of 512 by default (``--matrix 128`` runs a
cohort in a tenth of the time, with coarser pixels and less noise per voxel). For
comparison the same lesion rule is also applied to the phantom's *true* maps:
the Dice reachable with perfect maps, which separates the rule's own error from the maps'.

Writes ``docs/accuracy_lesion.md`` (date, machine, command, per-patient table, summary).

Run: ``python benchmarks/lesion_accuracy.py [--patients 25] [--methods nlr,bsvd]
[--workers 2] [--matrix 512] [--rows rows.pkl]``; every 5th patient has normal perfusion.
Each method's Tmax rule is scored at the thresholds the registry holds when the document is
written, from a threshold sweep kept per patient: ``--rows rows.pkl --render`` rewrites
the document from a saved run (after a calibration) without running the cohort again.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from _common import machine

from ctpmaps.evaluation import dice

ROOT = Path(__file__).resolve().parents[1]


TMAX_THRESHOLDS = tuple(round(x, 2) for x in np.arange(2.0, 10.01, 0.5))
CORE_THRESHOLDS = tuple(round(x, 3) for x in np.arange(0.10, 0.701, 0.025))


def sweep(maps, brain, hemis, voxel_ml: float, criteria, truth, affine) -> dict:
    """Dice and volume error (mL) of hypoperfusion per Tmax threshold and of the core per
    (Tmax, rCBF) pair, as `ctpmaps.lesion.segment_lesions` applies them (its median first,
    with the study's ``affine``)."""
    from ctpmaps.evaluation import dice
    from ctpmaps.lesion import relative_cbf, remove_small_clusters, smoothed_for_thresholds

    rcbf, valid, _ = relative_cbf(maps, brain, hemis, criteria)
    tmax, rcbf, _ = smoothed_for_thresholds(
        np.asarray(maps.tmax), rcbf, valid, affine, criteria.median_mm
    )

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


def _rule_on(maps, brain, ph, rule: str):
    """A lesion rule on given maps (hemispheres from the midline of the unenhanced frames)."""
    from ctpmaps.lesion import LesionCriteria, segment_about_midline

    s = ph.study
    return segment_about_midline(
        maps, brain, s.frames[..., :3].mean(-1), s.spacing, s.affine,
        criteria=LesionCriteria(rule=rule),
    )[0]  # fmt: skip


def _target(core: float, hypo: float) -> bool:
    mismatch = hypo - core
    ratio_ok = (core == 0 and hypo > 0) or (core > 0 and hypo / core >= 1.8)
    return bool(core < 70 and mismatch >= 15 and ratio_ok)


def _score(row: dict, label: str, lesions, truth) -> None:
    v = lesions.volumes_ml()
    row[f"{label}_core_ml"] = v["core"]
    row[f"{label}_hypo_ml"] = v["hypoperfusion"]
    row[f"{label}_dice_core"] = dice(lesions.core, truth.masks["core"])
    row[f"{label}_dice_hypo"] = dice(lesions.hypoperfusion, truth.masks["hypoperfusion"])
    row[f"{label}_target"] = _target(v["core"], v["hypoperfusion"])


def phantom_patient(seed: int, matrix: int, *, normal: bool, patient_id: str):
    """One phantom patient of the cohort benchmarks (evaluation seeds 1000 and up,
    calibration seeds 3000 and up): the one place that says which phantom is the judge.

    The default phantom (the heterogeneous model, independent of the fitters) at the
    seed protocol and default dose; its truth masks ``core`` and ``hypoperfusion`` come
    from the documented thresholds on its true maps.
    """
    from ctpmaps.phantom import PhantomConfig, acquisition_preset, simulate_patient

    cfg = PhantomConfig(acquisition=acquisition_preset("seed", matrix=matrix))
    return simulate_patient(cfg, seed=seed, normal=normal, patient_id=patient_id)


#: Options of the chain a method of the cohort may carry after a ``+``: ``nlr+nbmtt`` is
#: ``nlr`` with ``neighbourhood_mtt=True`` (`ctpmaps.perfusion.BoxNLRModel`).
VARIANTS = {"nbmtt": {"neighbourhood_mtt": True}}


def chain_method(token: str) -> tuple[str, dict]:
    """The method and the chain's options of a ``--methods`` token (`VARIANTS`)."""
    name, _, variant = token.partition("+")
    if variant and variant not in VARIANTS:
        raise SystemExit(f"unknown variant {variant!r} of {token!r}: expected {list(VARIANTS)}")
    return name, dict(VARIANTS[variant]) if variant else {}


def one_patient(i: int, matrix: int, methods: tuple[str, ...]) -> dict:
    """Simulate patient ``i``, run the chain per method, compare both rules with the truth."""
    import logging

    logging.disable(logging.WARNING)

    from ctpmaps.pipeline import run_study

    normal = i % 5 == 4
    ph = phantom_patient(1000 + i, matrix, normal=normal, patient_id=f"LA-{i + 1:03d}")
    t = ph.truth
    voxel_ml = float(np.prod(ph.study.spacing)) / 1000
    row = {
        "patient": f"LA-{i + 1:03d}",
        "normal": normal,
        "residue": t.params["residue_shape"],
        "side": t.params["lesion"]["side"] or "-",
        "truth_core_ml": float(t.masks["core"].sum()) * voxel_ml,
        "truth_hypo_ml": float(t.masks["hypoperfusion"].sum()) * voxel_ml,
    }
    row["truth_target"] = _target(row["truth_core_ml"], row["truth_hypo_ml"])
    brain = t.masks["brain"]
    true_maps = {k: np.where(brain, v, np.nan).astype(np.float32) for k, v in t.maps.items()}
    for rule in RULES:
        _score(row, f"truth/{rule}", _rule_on(true_maps, brain, ph, rule), t)
    for method in methods:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            name, options = chain_method(method)
            r = run_study(
                ph.study, Path(tmp) / "out", method=name, dicom=False, report=False, **options
            )
            row[f"{method}_s"] = time.perf_counter() - t0
        _score(row, f"{method}/tmax", r.lesions, t)  # the chain's default rule
        _score(row, f"{method}/cbv", _rule_on(r.maps.maps, r.brain, ph, "cbv"), t)
        row |= {f"{method}/{k}": v for k, v in map_stats(r.maps.maps, r.brain, t).items()}
        les = r.lesions  # every threshold pair on the same maps (see `at_thresholds`)
        row[f"{method}/sweep"] = sweep(
            r.maps.maps, r.brain, les.hemispheres, les.voxel_ml, les.criteria, t.masks,
            ph.study.affine,
        )  # fmt: skip
    return row


def at_thresholds(rows: list[dict], methods) -> None:
    """Score each method's Tmax rule at the thresholds the registry holds now
    (`ctpmaps.perfusion.METHODS`), from the threshold sweep stored per patient: the same
    masks the chain makes with those thresholds (`sweep`), so that a
    cohort run before a calibration can be reported at the calibrated values."""
    from ctpmaps.perfusion import METHODS

    for m in methods:
        info = METHODS[chain_method(m)[0]]
        th, tc = info.hypoperfusion_tmax_s, info.core_rcbf
        key = f"{m}/tmax"
        for r in rows:
            found = r.get(f"{m}/sweep")
            if not found or ("core", th, tc) not in found:
                continue
            for kind, (dice_, err) in (("hypo", found[("hypo", th)]),
                                       ("core", found[("core", th, tc)])):  # fmt: skip
                r[f"{key}_dice_{kind}"] = None if np.isnan(dice_) else float(dice_)
                r[f"{key}_{kind}_ml"] = r[f"truth_{kind}_ml"] + err
            r[f"{key}_target"] = _target(r[f"{key}_core_ml"], r[f"{key}_hypo_ml"])


#: Tissue classes (`ctpmaps.phantom.anatomy.TISSUE_LABELS`) and residue classes
#: (`ctpmaps.phantom.truth.RESIDUE_LABELS`) of the map statistics.
TISSUES = {"GM": 1, "WM": 2}
RESIDUES = {"box-like": 1, "intermediate": 2, "exponential-like": 3}


def map_stats(maps, fitted, t) -> dict:
    """Map accuracy of one patient: per tissue and residue class, the median over voxels of
    estimate / truth - 1 for CBF and CBV (all brain voxels of the class, lesion included),
    also net of the phantom's VOF/AIF area ratio (``net_``: the bias of a perfect method
    whose AIF is scaled to the VOF is 1 / ratio - 1, +0-18 %);
    the CBF a deconvolution without error of its own reads (``limit_``: the effective
    response's height over the ratio) and the error beyond it (``own_``);
    the share of brain voxels with MTT < 1 s; the median Tmax (s) of healthy brain (outside
    the true hypoperfusion and oligaemia) and its truth."""
    brain = t.masks["brain"] & fitted
    ratio = t.vof_aif_area_ratio or 1.0
    out: dict = {}
    for tname, code in TISSUES.items():
        for rname, label in RESIDUES.items():
            sel = brain & (t.tissue == code) & (t.residue_label == label)
            for m in ("cbf", "cbv"):
                est, true = np.asarray(getattr(maps, m))[sel], t.maps[m][sel]
                ok = np.isfinite(est) & (true > 0)
                bias = float(np.median(est[ok] / true[ok]) - 1) if ok.sum() >= 50 else None
                out[f"bias_{m}_{tname}_{rname}"] = bias
                # A method that scales the AIF to the VOF reads truth / ratio at best.
                out[f"net_{m}_{tname}_{rname}"] = None if bias is None else (1 + bias) * ratio - 1
            if t.response_peak is None:
                continue
            # CBF: a deconvolution reads the effective response's height, truth x peak, at
            # best (`Truth.response_peak`): what that limit is, and the error beyond it.
            est, true = np.asarray(maps.cbf)[sel], t.maps["cbf"][sel] * t.response_peak[sel]
            ok = np.isfinite(est) & (true > 0)
            enough = ok.sum() >= 50
            limit = np.median(t.response_peak[sel][ok]) / ratio - 1 if enough else None
            own = np.median(est[ok] / true[ok]) * ratio - 1 if enough else None
            out[f"limit_cbf_{tname}_{rname}"] = None if limit is None else float(limit)
            out[f"own_cbf_{tname}_{rname}"] = None if own is None else float(own)
            # the spread: a voxel's mean absolute own error
            mae = np.mean(np.abs(est[ok] / true[ok] * ratio - 1)) if enough else None
            out[f"mae_cbf_{tname}_{rname}"] = None if mae is None else float(mae)
    est, true = np.asarray(maps.cbf)[brain], t.maps["cbf"][brain]
    ok = np.isfinite(est)
    out["cbf_rmse"] = float(np.sqrt(np.mean((est[ok] - true[ok]) ** 2))) if ok.any() else None
    out["cbf_rmse_const"] = float(np.std(true[ok])) if ok.any() else None  # the true mean's
    mtt = np.asarray(maps.mtt)[brain]
    out["mtt_below_1s"] = float(np.count_nonzero(mtt < 1.0) / max(mtt.size, 1))
    healthy = brain & ~t.masks["hypoperfusion"] & ~t.masks["oligaemia"]
    tmax = np.asarray(maps.tmax)[healthy]
    out["healthy_tmax"] = float(np.nanmedian(tmax)) if tmax.size else None
    out["healthy_tmax_true"] = float(np.median(t.maps["tmax"][healthy])) if tmax.size else None
    return out


def map_lines(rows: list[dict], methods) -> list[str]:
    """The map-accuracy section: per method, the median over patients of each statistic of
    `map_stats` (with the range over patients)."""

    def cell(key):
        v = np.array([r[key] for r in rows if r.get(key) is not None], float)
        if v.size == 0:
            return "–"
        signed = any(f"/{k}_" in key for k in ("bias", "net", "limit", "own"))
        pct = signed or "below" in key
        f = (lambda x: f"{100 * x:+.0f} %") if signed else (
            (lambda x: f"{100 * x:.2f} %") if pct else (
                (lambda x: f"{x:.2f}") if "/mae_" in key else (lambda x: f"{x:.1f}")))  # fmt: skip
        return f"{f(np.median(v))} ({f(v.min())} to {f(v.max())})"

    names = [(m, tn, rn) for m in ("cbf", "cbv") for tn in TISSUES for rn in RESIDUES]
    classes = ["_".join(n) for n in names]
    header = " | ".join(f"{m.upper()} {tn} {rn}" for m, tn, rn in names)
    lines = [
        "## Maps (all patients)",
        "",
        "Median over patients of each patient's median voxel-wise error (estimate / truth - 1)"
        " per tissue and residue class (the phantom's residue shape classes: box-like k >= 8,"
        " intermediate, exponential-like k <= 1.5; all brain voxels of the class, lesion "
        "included), the share of brain voxels with MTT < 1 s, and the median Tmax of healthy"
        " brain (outside the true hypoperfusion and oligaemia) beside its truth; the range "
        "over patients in brackets.",
        "",
        f"| method | {header} | MTT < 1 s | healthy Tmax s (truth) |",
        "|---|" + "---|" * (len(classes) + 2),
    ]
    for meth in methods:
        cells = [cell(f"{meth}/bias_{c}") for c in classes]
        cells.append(cell(f"{meth}/mtt_below_1s"))
        cells.append(f"{cell(f'{meth}/healthy_tmax')} ({cell(f'{meth}/healthy_tmax_true')})")
        lines.append(f"| {meth} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "The same CBF and CBV errors net of the phantom's VOF/AIF area ratio (0.85-1.0 per "
        "patient): every method here scales its AIF to the VOF's area, so a perfect one reads "
        "truth / ratio, +0 to +18 %; the cells are (estimate / truth) x ratio - 1.",
        "",
        f"| method | {header} |",
        "|---|" + "---|" * len(classes),
    ]
    for meth in methods:
        cells = [cell(f"{meth}/net_{c}") for c in classes]
        lines.append(f"| {meth} | " + " | ".join(cells) + " |")
    cbf = [c for c in classes if c.startswith("cbf_")]
    if not any(r.get(f"{methods[0]}/limit_{cbf[0]}") is not None for r in rows):
        return lines + [""]
    header = " | ".join(f"{tn} {rn}" for m, tn, rn in names if m == "cbf")
    lines += [
        "",
        "CBF: the error budget. The transport from the artery to the tissue (dispersion, "
        "1-3.5 s in the lesion) and the residue cannot be told apart from the curves, so a "
        "deconvolution against the true AIF, however exact, reads the height of the "
        "effective impulse response, the true CBF x `Truth.response_peak` (Calamante et al. "
        "2000). *Limit*: what a method without error of its own reads against the truth, "
        "the median of response_peak / ratio - 1 (the VOF's area and the dispersion, no "
        "noise); *own error*: (estimate / (truth x response_peak)) x ratio - 1, the error "
        "beyond both. Median over patients (range).",
        "",
        f"| | {header} |",
        "|---|" + "---|" * len(cbf),
        "| limit (any method) | " + " | ".join(cell(f"{methods[0]}/limit_{c}") for c in cbf) + " |",
    ]
    for meth in methods:
        cells = [cell(f"{meth}/own_{c}") for c in cbf]
        lines.append(f"| {meth}: own error | " + " | ".join(cells) + " |")
    if not any(r.get(f"{methods[0]}/cbf_rmse") is not None for r in rows):
        return lines + [""]
    lines += [
        "",
        "CBF voxel by voxel: the root-mean-square error inside the brain (mL/100 g/min) "
        "beside a constant predictor's (each patient's true brain mean), and a voxel's mean "
        "absolute own error (as above, per voxel) per class. Median over patients (range).",
        "",
        f"| method | RMSE | constant | {header} |",
        "|---|---|---|" + "---|" * len(cbf),
    ]
    for meth in methods:
        cells = [cell(f"{meth}/cbf_rmse"), cell(f"{meth}/cbf_rmse_const")]
        cells += [cell(f"{meth}/mae_{c}") for c in cbf]
        lines.append(f"| {meth} | " + " | ".join(cells) + " |")
    return lines + [""]


#: Lesion rules compared: the RAPID-like default and the seed's (no Tmax).
RULES = ("tmax", "cbv")


def _shown(path: Path) -> str:
    """``path`` relative to the repository where it is inside it."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _f(v, digits=2) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _stats(values) -> str:
    v = np.array([x for x in values if x is not None and np.isfinite(x)], float)
    if v.size == 0:
        return "–"
    sd = v.std(ddof=1) if v.size > 1 else 0.0
    return f"{v.mean():.2f} ± {sd:.2f} (median {np.median(v):.2f}, min {v.min():.2f})"


def write_doc(rows: list[dict], methods, args, elapsed: float, path: Path) -> None:
    from ctpmaps import __version__
    from ctpmaps.lesion import DEFAULT_CORE_RCBF
    from ctpmaps.perfusion import METHODS

    stroke = [r for r in rows if not r["normal"]]
    normal = [r for r in rows if r["normal"]]
    labels = [f"truth/{r}" for r in RULES] + [f"{m}/{r}" for m in methods for r in RULES]
    names = {
        "truth/tmax": "true maps, Tmax rule",
        "truth/cbv": "true maps, CBV/TTP rule",
        **{f"{m}/tmax": f"**{m}, Tmax rule (default)**" for m in methods},
        **{f"{m}/cbv": f"{m}, CBV/TTP rule" for m in methods},
    }
    first = f"{methods[0]}/tmax"
    lines = [
        "# Lesion accuracy on phantom patients",
        "",
        f"Generated by `benchmarks/lesion_accuracy.py` on {datetime.date.today():%Y-%m-%d}, "
        f"ctpmaps {__version__}, {machine()}; {elapsed / 60:.1f} min with "
        f"{args.workers} worker(s).",
        "",
        f"Command: `python benchmarks/lesion_accuracy.py --patients {args.patients} "
        f"--matrix {args.matrix} --methods {','.join(methods)} --workers {args.workers}"
        + (f" --out {_shown(args.out)}`" if args.out.name != "accuracy_lesion.md" else "`"),
        "",
        f"Cohort: {len(rows)} phantom patients ({len(stroke)} with an MCA stroke, "
        f"{len(normal)} with normal perfusion), seeds 1000-{999 + len(rows)}, seed protocol at "
        f"the default dose (150 mAs, 89 frames at 0.5 s, 8 slices of 5 mm), **matrix "
        f"{args.matrix}** ({250 / args.matrix:.2f} mm pixels"
        + ("). " if args.matrix == 512 else "; the seed's is 512, 0.49 mm). ")
        + "Each patient runs the whole chain "
        "(`run_study`: motion correction, guided bilateral filter, maps, lesions; default "
        "options) once per method"
        + (
            "; `+nbmtt`: the NLR with `neighbourhood_mtt=True` (`ctpmaps run "
            "--neighbourhood-mtt`, `ctpmaps.perfusion.boxnlr`)."
            if any("+nbmtt" in m for m in methods)
            else "."
        ),
        "",
        "Rules (`ctpmaps.lesion.LesionCriteria` defaults):",
        "",
        "- *Tmax rule* (the chain's default, RAPID-like): hypoperfusion = Tmax above the "
        "method's threshold; core = CBF below a fraction of the median CBF of healthy tissue "
        "(Tmax < 4 s) in the other hemisphere, inside the hypoperfusion; both read after an "
        "in-plane median over 3 mm (`ctpmaps.lesion.median_in_brain`; none at 128 x 128, whose "
        "pixels are larger); clusters under 0.5 mL dropped. Both thresholds are the method's "
        "(`ctpmaps.perfusion.METHODS`: "
        + ", ".join(
            f"{m} Tmax > {METHODS[b].hypoperfusion_tmax_s:g} s, rCBF < {METHODS[b].core_rcbf:g}"
            for m, b in ((m, chain_method(m)[0]) for m in methods)
            if b in METHODS
        )
        + "), calibrated on a separate cohort (`docs/core_threshold.md`); the true maps take "
        f"RAPID's 6 s and {DEFAULT_CORE_RCBF:.2f}.",
        "- *CBV/TTP rule* (the seed's, for maps without Tmax), applied to the same maps: "
        "hypoperfusion = TTP more than 4 s later than the other hemisphere's median; core = "
        "hypoperfused voxels with CBV < 60 % of the mirrored contralateral CBV.",
        "- *True maps*: the rule on the phantom's true maps, i.e. what a perfect perfusion "
        "method would give; it measures the rule's own error.",
        "",
        "Truth: the phantom's core and hypoperfusion (core + penumbra) masks.",
        "",
        "## Summary (stroke patients)",
        "",
        "| maps and rule | core Dice | hypoperfusion Dice | mean abs. volume error core / "
        "hypo mL | DEFUSE-3 agreement |",
        "|---|---|---|---|---|",
    ]
    for label in labels:
        agree = np.mean([r[f"{label}_target"] == r["truth_target"] for r in stroke])
        err = [
            np.mean([abs(r[f"{label}_{k}_ml"] - r[f"truth_{k}_ml"]) for r in stroke])
            for k in ("core", "hypo")
        ]
        lines.append(
            f"| {names[label]} | {_stats(r[f'{label}_dice_core'] for r in stroke)} | "
            f"{_stats(r[f'{label}_dice_hypo'] for r in stroke)} | "
            f"{err[0]:.1f} / {err[1]:.1f} | {100 * agree:.0f} % |"
        )
    lines += [
        "",
        "Mean ± SD over patients (median, minimum). DEFUSE-3 agreement: share of patients "
        "whose target-mismatch flag (core < 70 mL, mismatch >= 15 mL, ratio >= 1.8) equals "
        "the one computed from the true volumes.",
        "",
        "## Normal perfusion (volumes, mL)",
        "",
        "| patient | " + " | ".join(f"{names[x]} core / hypo" for x in labels[2:]) + " |",
        "|---|" + "---|" * len(labels[2:]),
    ]
    for r in normal:
        cells = [f"{_f(r[f'{x}_core_ml'], 1)} / {_f(r[f'{x}_hypo_ml'], 1)}" for x in labels[2:]]
        lines.append(f"| {r['patient']} | " + " | ".join(cells) + " |")
    second = f"{methods[0]}/cbv"
    lines += [
        "",
        f"## Per patient ({methods[0]})",
        "",
        "| patient | residue | side | truth core / hypo mL | "
        f"{names[first]}: core / hypo mL | Dice core / hypo | "
        f"{names[second]}: core / hypo mL | Dice core / hypo | chain s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['patient']} | {r['residue']} | {r['side']} | "
            f"{_f(r['truth_core_ml'], 1)} / {_f(r['truth_hypo_ml'], 1)} | "
            f"{_f(r[f'{first}_core_ml'], 1)} / {_f(r[f'{first}_hypo_ml'], 1)} | "
            f"{_f(r[f'{first}_dice_core'])} / {_f(r[f'{first}_dice_hypo'])} | "
            f"{_f(r[f'{second}_core_ml'], 1)} / {_f(r[f'{second}_hypo_ml'], 1)} | "
            f"{_f(r[f'{second}_dice_core'])} / {_f(r[f'{second}_dice_hypo'])} | "
            f"{_f(r[f'{methods[0]}_s'], 1)} |"
        )
    lines += ["", "Dice is undefined (–) where both masks are empty (normal perfusion)."]
    lines += ["", *map_lines(rows, methods)]
    path.write_text("\n".join(lines) + "\n")


def cohort_arguments(doc: str, *, patients: int, matrix: int, methods: str, out: str, extra=()):
    """Command-line arguments shared by the cohort scripts (parsed); ``extra``: more
    ``(flag, keywords)`` of the calling script."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    for flag, kw in extra:
        ap.add_argument(flag, **kw)
    ap.add_argument("--patients", type=int, default=patients)
    ap.add_argument("--matrix", type=int, default=matrix)
    ap.add_argument("--methods", default=methods)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / out)
    args = ap.parse_args()
    args.methods = tuple(m for m in args.methods.split(",") if m)
    return args


def run_cohort(one, args, show) -> list[dict]:
    """``one(i, matrix, methods)`` for every patient on ``args.workers`` processes, in order;
    ``show(row)`` as each arrives."""
    rows = []
    with ProcessPoolExecutor(args.workers) as pool:
        futures = [pool.submit(one, i, args.matrix, args.methods) for i in range(args.patients)]
        for f in futures:
            rows.append(f.result())
            show(rows[-1])
    return rows


def main() -> int:
    args = cohort_arguments(
        __doc__,
        patients=25,
        matrix=512,
        methods="nlr",
        out="accuracy_lesion.md",
        extra=[
            ("--rows", {"type": Path, "help": "save the per-patient results here (pickle)"}),
            ("--render", {"action": "store_true", "help": "write the doc from --rows"}),
        ],
    )
    methods = args.methods
    t0 = time.perf_counter()

    def show(row: dict) -> None:
        m = f"{methods[0]}/tmax"
        print(
            f"{row['patient']} {'normal' if row['normal'] else row['side']:6s} "
            f"core {row['truth_core_ml']:5.1f}/{row[f'{m}_core_ml']:5.1f} mL "
            f"Dice {_f(row[f'{m}_dice_core'])}  hypo {row['truth_hypo_ml']:5.1f}/"
            f"{row[f'{m}_hypo_ml']:5.1f} mL Dice {_f(row[f'{m}_dice_hypo'])}",
            flush=True,
        )

    import pickle

    if args.rows and args.rows.exists() and args.render:
        saved = pickle.loads(args.rows.read_bytes())
        rows, elapsed = saved["rows"], saved["elapsed"]
    else:
        rows = run_cohort(one_patient, args, show)
        elapsed = time.perf_counter() - t0
        if args.rows:
            args.rows.write_bytes(pickle.dumps({"rows": rows, "elapsed": elapsed}))
    at_thresholds(rows, methods)
    from ctpmaps.io.atomic import atomic_path

    with atomic_path(args.out) as tmp:
        write_doc(rows, methods, args, elapsed, tmp)
    print(args.out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())

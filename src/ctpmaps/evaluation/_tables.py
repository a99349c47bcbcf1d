"""Builders of the cohort tables from per-patient results (see `ctpmaps.evaluation.cohort`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .agreement import (
    bland_altman,
    friedman,
    intraclass_correlation,
    mean_absolute_difference,
    pearson,
)
from .maps import psnr_db

Row = dict[str, Any]

CAPTIONS = {
    "maps": "Map errors on the normalised [0, 1] scale against the map reference: MSE (mean "
    "and SD over patients) and PSNR (of the mean MSE) over every voxel of the slices and "
    "inside the brain; the constant predictor (the reference's mean on the same voxels) beside "
    "them, and the brain MSE as a fraction of the constant predictor's; inside the brain also "
    "the cohort's constant (one value for every patient: the mean of the patients' brain "
    "means) and the brain MSE as a fraction of its MSE.",
    "maps_per_patient": "Map errors per patient, normalised scale.",
    "physical": "Errors in physical units against the map reference: median over patients of "
    "each patient's median signed and absolute difference (map's unit) and relative error (%), "
    "inside the brain and per region.",
    "dice": "Dice similarity coefficient per lesion and pair of sources over the patients kept "
    "(mean, sample SD, n); n_undefined pairs of empty masks are not averaged.",
    "dice_per_patient": "Dice per patient, lesion and pair; excluded patients flagged.",
    "volume_agreement": "Agreement of lesion volumes per pair of sources (differences "
    "source_a - source_b): Pearson r and p, Bland-Altman bias, SD of differences, 95 % limits of "
    "agreement, coefficient of repeatability, mean absolute difference, ICC(1,k) with 95 % CI.",
    "across_sources": "All sources together per lesion: Friedman test (Wilcoxon signed-rank for "
    "two sources) and ICC(1,k) with 95 % CI over the patients having every source.",
    "volumes": "Lesion volume per patient and source, mL.",
    "volume_pairs": "Paired volumes behind each row of the volume agreement, mL.",
    "exclusions": "Per patient and lesion: the reference's volume and whether the patient is "
    "left out of the Dice and of the volume statistics.",
}


@dataclass
class Context:
    """What every table builder needs."""

    results: list
    reference: str
    sources: list[str]
    pairs: list[tuple[str, str]]
    lesions: list[str]
    min_reference_ml: float
    exclude_normal: bool

    def reference_ml(self, result, lesion: str) -> float | None:
        return result.volumes_ml.get(self.reference, {}).get(lesion)

    def out_of_dice(self, result, lesion: str) -> bool:
        ref = self.reference_ml(result, lesion)
        return ref is None or ref < self.min_reference_ml

    def out_of_volumes(self, result) -> bool:
        hypo = self.reference_ml(result, "hypoperfusion")
        return self.exclude_normal and hypo is not None and hypo < self.min_reference_ml


def _mean_sd(values: list[float]) -> tuple[float, float]:
    v = np.asarray([x for x in values if math.isfinite(x)], dtype=float)
    if v.size == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else math.nan


def _of_pair(rows: list[Row], lesion: str, a: str, b: str) -> list[Row]:
    return [r for r in rows if (r["lesion"], r["source_a"], r["source_b"]) == (lesion, a, b)]


def _dice_of(result, lesion: str, a: str, b: str) -> float | None:
    value = result.dice.get((lesion, a, b))
    return result.dice.get((lesion, b, a)) if value is None else value


# ----------------------------------------------------------------------------- lesions
def volumes(ctx: Context) -> list[Row]:
    return [
        {"patient": r.patient, "lesion": lesion, "source": s, "volume_ml": r.volumes_ml[s][lesion]}
        for r in ctx.results
        for lesion in ctx.lesions
        for s in ctx.sources
        if lesion in r.volumes_ml.get(s, {})
    ]


def exclusions(ctx: Context) -> list[Row]:
    return [
        {
            "patient": r.patient,
            "lesion": lesion,
            "reference_volume_ml": ctx.reference_ml(r, lesion),
            "excluded_from_dice": ctx.out_of_dice(r, lesion),
            "excluded_from_volumes": ctx.out_of_volumes(r),
        }
        for r in ctx.results
        for lesion in ctx.lesions
    ]


def dice_per_patient(ctx: Context) -> list[Row]:
    rows = []
    for r in ctx.results:
        for lesion in ctx.lesions:
            for a, b in ctx.pairs:
                value = _dice_of(r, lesion, a, b)
                if value is not None:
                    rows.append(
                        {
                            "patient": r.patient,
                            "lesion": lesion,
                            "source_a": a,
                            "source_b": b,
                            "dice": value,
                            "excluded": ctx.out_of_dice(r, lesion),
                        }
                    )
    return rows


def dice_summary(per_patient: list[Row], ctx: Context) -> list[Row]:
    rows = []
    for lesion in ctx.lesions:
        for a, b in ctx.pairs:
            kept = [r["dice"] for r in _of_pair(per_patient, lesion, a, b) if not r["excluded"]]
            if not kept:
                continue
            mean, sd = _mean_sd(kept)
            n = sum(math.isfinite(v) for v in kept)
            rows.append(
                {
                    "lesion": lesion,
                    "source_a": a,
                    "source_b": b,
                    "n": n,
                    "n_undefined": len(kept) - n,
                    "dice_mean": mean,
                    "dice_sd": sd,
                }
            )
    return rows


def volume_pairs(ctx: Context) -> list[Row]:
    rows = []
    for lesion in ctx.lesions:
        for a, b in ctx.pairs:
            for r in ctx.results:
                va = r.volumes_ml.get(a, {}).get(lesion)
                vb = r.volumes_ml.get(b, {}).get(lesion)
                if va is None or vb is None or ctx.out_of_volumes(r):
                    continue
                rows.append(
                    {
                        "lesion": lesion,
                        "source_a": a,
                        "source_b": b,
                        "patient": r.patient,
                        "volume_a_ml": va,
                        "volume_b_ml": vb,
                    }
                )
    return rows


def _agreement_row(lesion: str, a: str, b: str, va: np.ndarray, vb: np.ndarray) -> Row:
    r = pearson(va, vb)
    ba = bland_altman(va, vb)
    mad = mean_absolute_difference(va, vb)
    icc = intraclass_correlation(np.column_stack([va, vb])) if va.size else None
    row: Row = {"lesion": lesion, "source_a": a, "source_b": b, "n": int(va.size)}
    row.update(pearson_r=r.r, pearson_p=r.p, bias_ml=ba.bias_ml, sd_diff_ml=ba.sd_ml)
    row.update(loa_low_ml=ba.loa_low_ml, loa_high_ml=ba.loa_high_ml, cr_ml=ba.cr_ml)
    row.update(mean_abs_diff_ml=mad.mean_ml, sd_abs_diff_ml=mad.sd_ml)
    for key in ("icc1k", "icc1k_ci95_low", "icc1k_ci95_high", "icc1k_p", "icc1", "icc2"):
        row[key] = getattr(icc, key) if icc is not None else math.nan
    return row


def volume_agreement(pairs: list[Row], ctx: Context) -> list[Row]:
    rows = []
    for lesion in ctx.lesions:
        for a, b in ctx.pairs:
            sel = _of_pair(pairs, lesion, a, b)
            if sel:
                va = np.array([p["volume_a_ml"] for p in sel], dtype=float)
                vb = np.array([p["volume_b_ml"] for p in sel], dtype=float)
                rows.append(_agreement_row(lesion, a, b, va, vb))
    return rows


def across_sources(ctx: Context) -> list[Row]:
    rows = []
    for lesion in ctx.lesions:
        kept = [r for r in ctx.results if not ctx.out_of_volumes(r)]
        names = [s for s in ctx.sources if any(lesion in r.volumes_ml.get(s, {}) for r in kept)]
        complete = [r for r in kept if all(lesion in r.volumes_ml.get(s, {}) for s in names)]
        if len(names) < 2 or not complete:
            continue
        v = np.array([[r.volumes_ml[s][lesion] for s in names] for r in complete])
        test = friedman(v)
        icc = intraclass_correlation(v)
        rows.append(
            {
                "lesion": lesion,
                "sources": ";".join(names),
                "k_sources": len(names),
                "n_patients": len(complete),
                "test": test.test,
                "statistic": test.statistic,
                "p": test.p,
                "icc1k": icc.icc1k,
                "icc1k_ci95_low": icc.icc1k_ci95_low,
                "icc1k_ci95_high": icc.icc1k_ci95_high,
                "icc1": icc.icc1,
                "icc2": icc.icc2,
            }
        )
    return rows


# ----------------------------------------------------------------------------- maps
def maps_per_patient(ctx: Context) -> list[Row]:
    return [
        {"patient": r.patient, "map": name, "source": source, **err.as_dict()}
        for r in ctx.results
        for (name, source), err in r.map_errors.items()
    ]


def _map_keys(ctx: Context, attr: str) -> list[tuple[str, str]]:
    keys: dict[tuple[str, str], None] = {}
    for r in ctx.results:
        keys.update(dict.fromkeys(getattr(r, attr)))
    maps = {m: i for i, m in enumerate(dict.fromkeys(k[0] for k in keys))}
    rank = {s: i for i, s in enumerate(ctx.sources)}
    return sorted(keys, key=lambda k: (maps[k[0]], rank.get(k[1], len(rank)), k[1]))


def maps_summary(ctx: Context) -> list[Row]:
    rows = []
    for name, source in _map_keys(ctx, "map_errors"):
        errs = [r.map_errors[name, source] for r in ctx.results if (name, source) in r.map_errors]
        slice_mean, slice_sd = _mean_sd([e.mse_slice for e in errs])
        brain_mean, brain_sd = _mean_sd([e.mse_brain for e in errs])
        const_slice = _mean_sd([e.constant_mse_slice for e in errs])[0]
        const_brain = _mean_sd([e.constant_mse_brain for e in errs])[0]
        const_cohort = _cohort_constant_mse(errs)
        rows.append(
            {
                "map": name,
                "source": source,
                "n_patients": len(errs),
                "mse_slice_mean": slice_mean,
                "mse_slice_sd": slice_sd,
                "psnr_slice_db": psnr_db(slice_mean),
                "constant_mse_slice": const_slice,
                "mse_brain_mean": brain_mean,
                "mse_brain_sd": brain_sd,
                "psnr_brain_db": psnr_db(brain_mean),
                "constant_mse_brain": const_brain,
                "brain_mse_over_constant": brain_mean / const_brain if const_brain else math.nan,
                "cohort_constant_mse_brain": const_cohort,
                "brain_mse_over_cohort_constant": brain_mean / const_cohort
                if const_cohort
                else math.nan,
                **_level(errs, const_brain),
            }
        )
    return rows


def _level(errs, const_brain: float) -> dict[str, float]:
    """The patients' level error (`ctpmaps.evaluation.maps`, "Level"): the SD between
    patients of the ratio of brain means, %, and the MSE inside the brain with each
    patient's level matched, beside the constant's."""
    ratio, sd = _mean_sd(
        [e.estimate_mean_brain / e.reference_mean_brain for e in errs
         if e.reference_mean_brain > 0 and math.isfinite(e.mse_brain_level_matched)]
    )  # fmt: skip
    matched = _mean_sd([e.mse_brain_level_matched for e in errs])[0]
    return {
        "level_ratio_mean": ratio,
        "level_ratio_sd_pct": 100 * sd,
        "level_matched_mse_brain": matched,
        "level_matched_over_constant": matched / const_brain if const_brain else math.nan,
    }


def _cohort_constant_mse(errs) -> float:
    """Mean over patients of the MSE inside the brain of one value for all of them, the
    mean of their brain means (the value that minimises that mean): each patient's
    variance plus its mean's squared distance from it."""
    means = np.array([e.reference_mean_brain for e in errs], dtype=np.float64)
    var = np.array([e.constant_mse_brain for e in errs], dtype=np.float64)
    ok = np.isfinite(means) & np.isfinite(var)
    if not ok.any():
        return math.nan
    return float(np.mean(var[ok] + (means[ok] - means[ok].mean()) ** 2))


def _median(values: list[float]) -> float:
    v = [x for x in values if math.isfinite(x)]
    return float(np.median(v)) if v else math.nan


def physical(ctx: Context, units: Mapping[str, str]) -> list[Row]:
    rows = []
    for name, source in _map_keys(ctx, "physical"):
        per_patient = [
            r.physical[name, source] for r in ctx.results if (name, source) in r.physical
        ]
        for region in dict.fromkeys(e.region for errs in per_patient for e in errs):
            errs = [e for pe in per_patient for e in pe if e.region == region]
            row = {"map": name, "source": source, "region": region, "unit": units.get(name, "")}
            row["n_patients"] = len(errs)
            row["n_voxels"] = sum(e.n_voxels for e in errs)
            for key in (
                "median_bias",
                "median_abs_error",
                "median_bias_pct",
                "median_abs_error_pct",
            ):
                row[key] = _median([getattr(e, key) for e in errs])
            rows.append(row)
    return rows


def build(ctx: Context, units: Mapping[str, str]) -> dict[str, list[Row]]:
    """Every table of the cohort evaluation, by name (`CAPTIONS`)."""
    per_patient = dice_per_patient(ctx)
    pairs = volume_pairs(ctx)
    return {
        "maps": maps_summary(ctx),
        "maps_per_patient": maps_per_patient(ctx),
        "physical": physical(ctx, units),
        "dice": dice_summary(per_patient, ctx),
        "dice_per_patient": per_patient,
        "volume_agreement": volume_agreement(pairs, ctx),
        "across_sources": across_sources(ctx),
        "volumes": volumes(ctx),
        "volume_pairs": pairs,
        "exclusions": exclusions(ctx),
    }

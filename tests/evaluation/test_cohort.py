"""The cohort analysis on a synthetic cohort with known overlaps, volumes and map errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from synthetic_cohort import CASES, CBF_RANGE, SHAPE, VOXEL_ML

from ctpmaps.errors import InputError
from ctpmaps.evaluation import (
    PatientData,
    SourceData,
    evaluate_cohort,
    evaluate_patient,
    source_pairs,
    summarise_cohort,
)


@pytest.fixture(scope="module")
def evaluation(patients):
    return evaluate_cohort(
        patients,
        reference="truth",
        value_ranges={"cbf": CBF_RANGE},
        sources=["nlr", "cnn", "truth"],
        lesions=("core", "hypoperfusion"),
    )


def _expected_core_dice(case) -> float:
    n_ref, n_in, n_out = case
    return 2 * n_in / (n_ref + n_in + n_out)


def _row(rows, **match):
    found = [r for r in rows if all(r[k] == v for k, v in match.items())]
    assert len(found) == 1, match
    return found[0]


def test_pairs_put_the_reference_second():
    assert source_pairs(["nlr", "cnn", "truth"], "truth") == [
        ("nlr", "truth"),
        ("cnn", "truth"),
        ("nlr", "cnn"),
    ]


def test_exclusions_follow_the_reference_volume(evaluation):
    rows = evaluation.tables["exclusions"]
    out_core = {r["patient"] for r in rows if r["lesion"] == "core" and r["excluded_from_dice"]}
    out_hypo = {
        r["patient"] for r in rows if r["lesion"] == "hypoperfusion" and r["excluded_from_dice"]
    }
    out_volumes = {r["patient"] for r in rows if r["excluded_from_volumes"]}
    assert out_core == {"p3", "p4"}  # no core on the reference
    assert out_hypo == {"p4"}  # normal perfusion
    assert out_volumes == {"p4"}
    assert "1 mL" in evaluation.settings["exclusion_rule"]


def test_dice_table_gives_the_known_overlaps(evaluation):
    kept = [c for c in CASES.values() if c is not None and c[0] > 0]
    expected = [_expected_core_dice(c) for c in kept]  # 0.75, 1.0, 0.571...
    row = _row(evaluation.tables["dice"], lesion="core", source_a="nlr", source_b="truth")
    assert row["n"] == 3 and row["n_undefined"] == 0
    assert row["dice_mean"] == pytest.approx(np.mean(expected))
    assert row["dice_sd"] == pytest.approx(np.std(expected, ddof=1))
    cnn = _row(evaluation.tables["dice"], lesion="core", source_a="cnn", source_b="truth")
    assert cnn["dice_mean"] == 1.0 and cnn["n"] == 3
    # hypoperfusion = core + 60 shared voxels on every source; p3 (no core) agrees fully
    hypo = [2 * (c[1] + 60) / (c[0] + c[1] + c[2] + 120) for c in CASES.values() if c]
    row = _row(evaluation.tables["dice"], lesion="hypoperfusion", source_a="nlr", source_b="truth")
    assert row["n"] == 4
    assert row["dice_mean"] == pytest.approx(np.mean(hypo))


def test_volume_agreement_matches_the_known_volumes(evaluation):
    vols = {
        p: (c[0] * VOXEL_ML, (c[1] + c[2]) * VOXEL_ML) for p, c in CASES.items() if c is not None
    }  # patient -> (truth, nlr) core volumes, mL; p4 is out of the volume statistics
    truth = np.array([v[0] for v in vols.values()])
    nlr = np.array([v[1] for v in vols.values()])
    row = _row(
        evaluation.tables["volume_agreement"], lesion="core", source_a="nlr", source_b="truth"
    )
    assert row["n"] == 4
    d = nlr - truth
    assert row["bias_ml"] == pytest.approx(d.mean())
    assert row["sd_diff_ml"] == pytest.approx(d.std(ddof=1))
    assert row["mean_abs_diff_ml"] == pytest.approx(np.abs(d).mean())
    assert row["pearson_r"] == pytest.approx(np.corrcoef(nlr, truth)[0, 1])
    same = _row(
        evaluation.tables["volume_agreement"], lesion="core", source_a="cnn", source_b="truth"
    )
    assert same["bias_ml"] == 0.0 and same["cr_ml"] == 0.0 and same["icc1k"] == pytest.approx(1.0)
    pairs = [
        r for r in evaluation.tables["volume_pairs"] if r["lesion"] == "core"
        and r["source_a"] == "nlr" and r["source_b"] == "truth"
    ]  # fmt: skip
    assert [r["patient"] for r in pairs] == list(vols)


def test_across_sources_uses_every_source(evaluation):
    row = _row(evaluation.tables["across_sources"], lesion="core")
    assert row["sources"] == "nlr;cnn;truth"
    assert (row["test"], row["k_sources"], row["n_patients"]) == ("friedman", 3, 4)
    assert 0.0 <= row["p"] <= 1.0


def test_map_table_gives_the_known_mse(evaluation, patients):
    brain = patients[0].brain
    frac = brain.sum() / brain.size
    nlr = _row(evaluation.tables["maps"], map="cbf", source="nlr")
    # +15 mL/100 g/min on a 0-150 range is 0.1 inside the brain; NaN outside counts as 0
    assert nlr["n_patients"] == len(CASES)
    assert nlr["mse_brain_mean"] == pytest.approx(0.01, rel=1e-4)
    assert nlr["mse_slice_mean"] == pytest.approx(0.01 * frac, rel=1e-4)
    assert nlr["psnr_brain_db"] == pytest.approx(20.0, rel=1e-4)
    const = np.mean([np.var(p.sources["truth"].maps["cbf"][brain] / 150.0) for p in patients])
    assert nlr["constant_mse_brain"] == pytest.approx(const, rel=1e-4)
    assert nlr["brain_mse_over_constant"] == pytest.approx(0.01 / const, rel=1e-3)
    # The cohort's constant: the best single value for every patient, by minimising the
    # definition (mean over patients of the MSE of one value) numerically
    refs = [p.sources["truth"].maps["cbf"][brain] / 150.0 for p in patients]
    best = minimize_scalar(
        lambda c: np.mean([np.mean((r - c) ** 2) for r in refs]),
        bounds=(0.0, 1.0),
        method="bounded",
        options={"xatol": 1e-9},
    ).fun
    assert nlr["cohort_constant_mse_brain"] == pytest.approx(best, rel=1e-4)
    assert nlr["cohort_constant_mse_brain"] > const  # the patients' levels differ
    # the level: +15 mL/100 g/min on each patient's mean, and the error left once matched
    ratios = [(r.mean() + 0.1) / r.mean() for r in refs]
    assert nlr["level_ratio_mean"] == pytest.approx(np.mean(ratios), rel=1e-4)
    assert nlr["level_ratio_sd_pct"] == pytest.approx(100 * np.std(ratios, ddof=1), rel=1e-3)
    left = np.mean([np.mean(((r + 0.1) * r.mean() / (r.mean() + 0.1) - r) ** 2) for r in refs])
    assert nlr["level_matched_mse_brain"] == pytest.approx(left, rel=1e-3)
    assert nlr["level_matched_over_constant"] == pytest.approx(left / const, rel=1e-3)
    assert nlr["brain_mse_over_cohort_constant"] == pytest.approx(0.01 / best, rel=1e-3)
    cnn = _row(evaluation.tables["maps"], map="cbf", source="cnn")
    assert cnn["level_ratio_mean"] == pytest.approx(1.0) and cnn["level_matched_mse_brain"] == 0.0
    assert (
        cnn["mse_brain_mean"] == 0.0
        and cnn["psnr_brain_db"] is None
        or math.isinf(cnn["psnr_brain_db"])
    )
    phys = _row(evaluation.tables["physical"], map="cbf", source="nlr", region="brain")
    assert phys["median_bias"] == pytest.approx(15.0, rel=1e-5)
    assert phys["unit"] == "mL/100 g/min"


def test_volumes_table_has_every_patient_and_source(evaluation):
    rows = evaluation.tables["volumes"]
    assert len(rows) == len(CASES) * 2 * 3
    p0 = _row(rows, patient="p0", lesion="core", source="truth")
    assert p0["volume_ml"] == pytest.approx(CASES["p0"][0] * VOXEL_ML)


def test_two_step_api_gives_the_same_tables(patients, evaluation):
    results = [
        evaluate_patient(p, reference="truth", value_ranges={"cbf": CBF_RANGE}) for p in patients
    ]
    again = summarise_cohort(
        results,
        reference="truth",
        sources=["nlr", "cnn", "truth"],
        lesions=("core", "hypoperfusion"),
    )
    assert again.as_dict() == evaluation.as_dict()


def test_bad_input_is_named():
    brain = np.ones(SHAPE, bool)
    with pytest.raises(InputError, match="p9: nlr masks"):
        PatientData("p9", brain, 0.1, {"nlr": SourceData(masks={"core": np.ones((2, 2, 2), bool)})})
    with pytest.raises(InputError, match="voxel_ml"):
        PatientData("p9", brain, 0.0, {})
    p = PatientData("p9", brain, 0.1, {"nlr": SourceData(masks={"core": brain})})
    result = evaluate_patient(p, reference="nlr", value_ranges={})
    with pytest.raises(InputError, match="reference"):
        summarise_cohort([result], reference="truth")


def test_evaluation_is_strict_json(evaluation):
    text = json.dumps(evaluation.as_dict(), allow_nan=False)
    assert json.loads(text)["settings"]["reference"] == "truth"

"""Decision numbers: mismatch, HIR and the DEFUSE-3 target mismatch."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ctpmaps.lesion import (
    DEFUSE3,
    LesionCriteria,
    Lesions,
    TargetMismatch,
    decision_numbers,
    fit_midline,
    hemisphere_labels,
    segment_lesions,
)


def _lesions(core_n, hypo_n, severe_n=None, voxel_ml=1.0, side=2):
    shape = (200, 1, 1)
    idx = np.arange(shape[0])[:, None, None] * np.ones(shape, int)
    core, hypo = idx < core_n, idx < hypo_n
    severe = None if severe_n is None else idx < severe_n
    hemis = np.full(shape, side, np.uint8)
    return Lesions(core, hypo, hypo & ~core, severe, hemis, voxel_ml, "tmax", LesionCriteria())


@pytest.mark.parametrize(
    ("core", "hypo", "target"),
    [
        (20, 60, True),  # mismatch 40, ratio 3
        (69, 125, True),  # ratio 1.81, mismatch 56
        (70, 150, False),  # core not below 70 mL
        (20, 34, False),  # mismatch 14 mL
        (30, 53, False),  # ratio 1.77
        (0, 15, True),  # no core: infinite ratio
        (0, 10, False),
        (0, 0, False),
    ],
)
def test_defuse3(core, hypo, target):
    d = decision_numbers(_lesions(core, hypo))
    assert d["target_mismatch"] is target
    assert d["core_ml"] == core and d["hypoperfusion_ml"] == hypo
    assert d["mismatch_ml"] == hypo - core == d["penumbra_ml"]
    if core:
        assert d["mismatch_ratio"] == pytest.approx(hypo / core, abs=1e-3)
    else:
        assert d["mismatch_ratio"] is None
        assert d["mismatch_ratio_infinite"] is (hypo > 0)
    json.dumps(d)


def test_hir_side_and_custom_profile():
    d = decision_numbers(_lesions(10, 80, severe_n=32, voxel_ml=0.5, side=1))
    assert d["hypoperfusion_intensity_ratio"] == pytest.approx(0.4)
    assert d["severe_hypoperfusion_ml"] == 16.0 and d["hypoperfusion_ml"] == 40.0
    assert d["affected_side"] == "right"
    assert d["profile"]["name"] == "DEFUSE-3" and d["profile"]["core_below_ml"] == 70.0
    strict = TargetMismatch(core_below_ml=4.0)
    d2 = decision_numbers(_lesions(10, 80, voxel_ml=0.5), profile=strict)
    assert d2["target_mismatch"] is False and d2["profile"]["name"] == "custom"
    assert d2["hypoperfusion_intensity_ratio"] is None
    assert decision_numbers(_lesions(0, 0))["affected_side"] is None
    assert DEFUSE3.ratio_at_least == 1.8


def test_normal_patient_nlr_maps_give_volumes_near_zero(normal_128):
    """NLR maps of the filtered frames, as the chain makes them (`ctpmaps.pipeline`)."""
    from dataclasses import replace

    from ctpmaps.perfusion import compute_maps
    from ctpmaps.preprocess import guided_bilateral_filter

    s = normal_128.study
    s = replace(s, frames=guided_bilateral_filter(s.frames, s.spacing))
    result = compute_maps(s, method="nlr")
    midline = fit_midline(s.frames[..., :3].mean(-1), s.spacing, s.affine)
    hemis = hemisphere_labels(s.shape, s.affine, midline, mask=result.brain)
    voxel_ml = float(np.prod(s.spacing)) / 1000
    les = segment_lesions(result.maps, result.brain, hemis, voxel_ml)
    d = decision_numbers(les)
    assert d["core_ml"] < 2.0 and d["hypoperfusion_ml"] < 5.0
    assert d["target_mismatch"] is False

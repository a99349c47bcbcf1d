"""Map errors on the normalised scale and in physical units, on tiny arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ctpmaps.errors import InputError
from ctpmaps.evaluation import (
    map_error,
    normalise_map,
    physical_errors,
    psnr_db,
    regions_from_labels,
)


def test_normalise_map_clips_and_zeroes_nan():
    out = normalise_map(np.array([-1.0, 0.0, 5.0, 10.0, 20.0, np.nan]), (0.0, 10.0))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [0.0, 0.0, 0.5, 1.0, 1.0, 0.0])
    with pytest.raises(InputError, match="low < high"):
        normalise_map(np.zeros(2), (5.0, 5.0))


def test_mse_psnr_and_constant_predictor_by_hand():
    est = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(2, 2, 1)
    ref = np.array([[1.0, 2.0], [3.0, 6.0]]).reshape(2, 2, 1)
    brain = np.array([[True, True], [False, True]]).reshape(2, 2, 1)
    e = map_error(est, ref, value_range=(0.0, 10.0), brain=brain)
    # normalised errors 0, 0, 0, -0.2
    assert (e.n_slice, e.n_brain) == (4, 3)
    assert e.mse_slice == pytest.approx(0.04 / 4, rel=1e-6)
    assert e.psnr_slice_db == pytest.approx(20.0, rel=1e-6)
    assert e.mse_brain == pytest.approx(0.04 / 3, rel=1e-6)
    assert e.psnr_brain_db == pytest.approx(10 * math.log10(3 / 0.04), rel=1e-6)
    # constant predictor: the reference's mean on the same voxels (0.3 in both cases)
    assert e.constant_mse_slice == pytest.approx((0.04 + 0.01 + 0.0 + 0.09) / 4, rel=1e-6)
    assert e.constant_mse_brain == pytest.approx((0.04 + 0.01 + 0.09) / 3, rel=1e-6)


def test_level_ratio_and_the_error_left_once_the_level_is_matched_by_hand():
    brain = np.array([[True, True], [False, True]]).reshape(2, 2, 1)
    ref = np.array([[1.0, 2.0], [9.0, 3.0]]).reshape(2, 2, 1)
    # a pure level error: every brain voxel 1.5 times its truth (outside: ignored)
    e = map_error(1.5 * ref, ref, value_range=(0.0, 10.0), brain=brain)
    assert e.estimate_mean_brain / e.reference_mean_brain == pytest.approx(1.5)
    assert e.mse_brain > 0.01 and e.mse_brain_level_matched == pytest.approx(0.0, abs=1e-12)
    # an offset is not a level: brain means 0.2 and 0.3 normalised, the estimate times 2/3
    # gives 0.1333, 0.2, 0.2667 against 0.1, 0.2, 0.3
    e = map_error(ref + 1.0, ref, value_range=(0.0, 10.0), brain=brain)
    assert e.estimate_mean_brain == pytest.approx(0.3) and e.reference_mean_brain == pytest.approx(
        0.2
    )
    assert e.mse_brain_level_matched == pytest.approx(2 * (0.1 / 3) ** 2 / 3, rel=1e-5)
    # a map without a gain (a time: healthy Tmax near 0 s) gets no level
    assert math.isnan(
        map_error(
            ref + 1.0, ref, value_range=(0.0, 10.0), brain=brain, level=False
        ).mse_brain_level_matched
    )
    # nothing positive to scale: NaN, not a division by zero
    assert math.isnan(
        map_error(0 * ref, ref, value_range=(0.0, 10.0), brain=brain).mse_brain_level_matched
    )


def test_nan_outside_a_fit_counts_as_zero_like_the_unet_targets():
    ref = np.zeros((3, 1, 1))
    est = np.array([np.nan, 0.0, 1.5]).reshape(3, 1, 1)
    brain = np.array([False, True, True]).reshape(3, 1, 1)
    e = map_error(est, ref, value_range=(0.0, 3.0), brain=brain)
    assert e.mse_slice == pytest.approx(0.25 / 3)
    assert e.mse_brain == pytest.approx(0.25 / 2)
    assert e.constant_mse_brain == 0.0


def test_psnr_edges():
    assert psnr_db(0.01) == pytest.approx(20.0)
    assert psnr_db(0.0) == math.inf
    assert math.isnan(psnr_db(math.nan))


def test_map_error_rejects_shape_mismatch():
    with pytest.raises(InputError, match="shape"):
        map_error(np.zeros((2, 2, 1)), np.zeros((2, 3, 1)), value_range=(0, 1),
                  brain=np.ones((2, 3, 1), bool))  # fmt: skip
    with pytest.raises(InputError, match="brain"):
        map_error(np.zeros((2, 2, 1)), np.zeros((2, 2, 1)), value_range=(0, 1),
                  brain=np.ones((2, 2, 1)))  # fmt: skip


def test_physical_errors_per_region():
    ref = np.array([10.0, 20.0, 40.0, 50.0, 0.0, 30.0]).reshape(6, 1, 1)
    est = np.array([11.0, 22.0, 36.0, 45.0, 1.0, np.nan]).reshape(6, 1, 1)
    brain = np.array([True, True, True, True, True, False]).reshape(6, 1, 1)
    labels = np.array([1, 1, 2, 2, 2, 1]).reshape(6, 1, 1)
    regions = regions_from_labels(labels, {1: "GM", 2: "WM"})
    out = {e.region: e for e in physical_errors(est, ref, brain=brain, regions=regions)}
    assert list(out) == ["brain", "GM", "WM"]
    b = out["brain"]
    # differences +1, +2, -4, -5, +1 (the NaN voxel is outside the brain anyway)
    assert (b.n_voxels, b.n_relative) == (5, 4)  # the zero reference has no relative error
    assert b.median_bias == pytest.approx(1.0)
    assert b.median_abs_error == pytest.approx(2.0)
    # relative: +10, +10, -10, -10 %
    assert b.median_bias_pct == pytest.approx(0.0)
    assert b.median_abs_error_pct == pytest.approx(10.0)
    assert out["GM"].median_bias_pct == pytest.approx(10.0) and out["GM"].n_voxels == 2
    assert out["WM"].median_bias_pct == pytest.approx(-10.0) and out["WM"].n_relative == 2

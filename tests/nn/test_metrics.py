"""Map errors over the slice and inside the brain, beside a constant predictor."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ctpmaps.nn.train.metrics import MapErrors, map_errors, psnr


def test_errors_on_a_tiny_slice_by_hand():
    ref = np.array([[0.2, 0.4], [0.6, 0.1]])
    pred = np.array([[0.3, 0.4], [0.3, 0.0]])
    brain = np.array([[True, True], [True, False]])
    r = map_errors(pred, ref, brain)
    assert r["mse"] == pytest.approx((0.01 + 0 + 0.09 + 0.01) / 4)
    assert r["mse_brain"] == pytest.approx((0.01 + 0 + 0.09) / 3)
    assert r["mae_brain"] == pytest.approx((0.1 + 0 + 0.3) / 3)
    assert r["psnr_brain"] == pytest.approx(10 * math.log10(3 / 0.10))
    # constant predictor: the reference's brain mean 0.4 inside, 0 outside
    assert r["const_value"] == pytest.approx(0.4)
    assert r["const_mse_brain"] == pytest.approx((0.04 + 0 + 0.04) / 3)
    assert r["const_mse"] == pytest.approx((0.04 + 0 + 0.04 + 0.01) / 4)
    assert r["const_psnr"] == pytest.approx(psnr(r["const_mse"]))


def test_batches_and_processes_add_up_to_the_whole():
    rng = np.random.default_rng(0)
    ref, pred = rng.random((6, 5, 4)), rng.random((6, 5, 4))
    brain = rng.random((6, 5, 4)) > 0.3
    whole = map_errors(pred, ref, brain)
    a = MapErrors().add(pred[:2], ref[:2], brain[:2])
    b = MapErrors().add(torch.from_numpy(pred[2:]), torch.from_numpy(ref[2:]),
                        torch.from_numpy(brain[2:]))  # fmt: skip
    summed = MapErrors.from_list([x + y for x, y in zip(a.as_list(), b.as_list(), strict=True)])
    for k, v in summed.result().items():
        assert v == pytest.approx(whole[k], rel=1e-12), k


def test_no_brain_gives_nan_and_perfect_prediction_infinite_psnr():
    ref = np.full((3, 3), 0.5)
    r = map_errors(ref, ref, np.zeros((3, 3), bool))
    assert r["mse"] == 0 and r["psnr"] == math.inf
    assert math.isnan(r["mse_brain"]) and math.isnan(r["const_mse_brain"])
    with pytest.raises(ValueError, match="shapes"):
        map_errors(ref, ref[:2], np.ones((3, 3), bool))

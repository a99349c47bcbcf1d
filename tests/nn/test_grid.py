"""The model's training grid: recorded or inferred pixel size, resampling down and up."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from ctpmaps.nn.grid import (
    brain_fraction,
    downsample_slices,
    grid_shape,
    training_pixel_mm,
    upsample_slices,
)


def test_grid_shape():
    assert grid_shape((512, 512), (250 / 512, 250 / 512), (250 / 128, 250 / 128)) == (128, 128)
    assert grid_shape((512, 400), (0.5, 0.6), (2.0, 2.0)) == (128, 120)
    assert grid_shape((128, 128), (1.9, 2.0), (1.953, 1.953)) is None  # within 10 %
    assert grid_shape((64, 64), (4.0, 4.0), (2.0, 2.0)) == (128, 128)  # coarser study: up


def test_pixel_size_recorded_inferred_or_unknown(caplog):
    assert training_pixel_mm({"pixel_mm": [1.5, 1.25]}) == (1.5, 1.25)
    old = {"metrics": {"cv": [{"size": 64}, {"size": 128}], "best_fold": 1}}
    with caplog.at_level(logging.INFO, logger="ctpmaps.nn.grid"):
        assert training_pixel_mm(old, "cbf.safetensors") == (250 / 128, 250 / 128)
    assert "cbf.safetensors records no training pixel size: assuming 1.953 mm" in caplog.text
    assert training_pixel_mm({"cohort": {"phantom_matrix": 256}}) == (250 / 256, 250 / 256)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ctpmaps.nn.grid"):
        assert training_pixel_mm({"target": "cbv"}) is None
    assert "own grid" in caplog.text


def _smooth(n: int) -> torch.Tensor:
    """A smooth map on [0, 1] over a 250 mm field, (1, 1, n, n): two Gaussian blobs of
    40 and 25 mm SD."""
    c = (torch.arange(n, dtype=torch.float64) + 0.5) * 250 / n
    y, x = torch.meshgrid(c, c, indexing="ij")
    m = 0.6 * torch.exp(-((x - 100) ** 2 + (y - 120) ** 2) / (2 * 40**2))
    m += 0.3 * torch.exp(-((x - 170) ** 2 + (y - 150) ** 2) / (2 * 25**2))
    return m[None, None].float()


@pytest.mark.parametrize(("n", "coarse"), [(512, 128), (500, 128), (256, 100)])
def test_smooth_map_down_and_up_round_trip(n, coarse):
    fine = _smooth(n)
    down = downsample_slices(fine, (coarse, coarse))
    assert down.shape == (1, 1, coarse, coarse) and down.dtype == torch.float32
    # area averaging keeps the mean
    assert float(down.mean()) == pytest.approx(float(fine.mean()), rel=1e-3)
    # the coarse map is the same map sampled on the coarse grid (for ratios that are not
    # whole numbers, the averaging windows are whole fine pixels: up to half a fine pixel
    # off centre, 0.0026 on these slopes)
    torch.testing.assert_close(down, _smooth(coarse), atol=3e-3, rtol=0)
    back = upsample_slices(down, (n, n))
    assert back.shape == fine.shape
    assert float((back - fine).abs().max()) < 5e-3


def test_upsampling_is_smooth_not_blocky():
    coarse = torch.zeros(1, 1, 8, 8)
    coarse[..., 4:, :] = 1.0  # a step
    up = upsample_slices(coarse, (32, 32))[0, 0, :, 3]
    # nearest neighbour would jump once by 1; bicubic rises over several pixels
    assert float(up.diff().max()) < 0.5 and (up.diff() > 0.01).sum() >= 4
    assert float(up.min()) >= 0.0 and float(up.max()) <= 1.0  # overshoot clipped


def test_brain_weighted_upsampling_keeps_edge_values():
    # a network that predicts 0.4 in every coarse pixel touching the brain and 0 outside:
    # plain interpolation pulls the fine brain's edge towards the background's 0, weighting
    # by each coarse pixel's brain fraction keeps brain values there
    n, coarse = 256, 64
    c = torch.arange(n, dtype=torch.float32) - (n - 1) / 2
    brain = (c[:, None] ** 2 + c[None, :] ** 2) < 90**2
    weight = brain_fraction(brain[None].numpy(), (coarse, coarse))
    assert weight.shape == (1, 1, coarse, coarse)
    np.testing.assert_allclose(weight.sum() * (n / coarse) ** 2, brain.sum(), rtol=1e-4)
    pred = torch.where(weight > 0, torch.tensor(0.4), torch.tensor(0.0))
    plain = upsample_slices(pred, (n, n))[0, 0][brain]
    weighted = upsample_slices(pred, (n, n), weight)[0, 0][brain]
    assert float(plain.min()) < 0.35
    assert float(weighted.min()) > 0.399 and float(weighted.max()) < 0.401

"""The classic preset (``PhantomConfig(model="classic")``): the earlier phantom, unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from ctpmaps.phantom import PhantomConfig, acquisition_preset, simulate_patient
from ctpmaps.physics import BRAIN_DENSITY, HEMATOCRIT_FACTOR

# Recorded with the phantom as it was before the heterogeneous model became the default
# (commit 7d607a0): matrix, seed, core, penumbra and oligaemia volumes (mL), the sum of
# the CBF map (mL/100 g/min) and the residue shape drawn.
BEFORE = [
    (64, 0, 0.0, 0.0, 0.0, 390036.6330462098, "box"),
    (64, 1, 26.702880859375, 57.9833984375, 43.5638427734375, 514125.2619994879, "box"),
    (64, 5, 13.580322265625, 30.364990234375, 22.430419921875, 319985.9449612498, "gamma"),
    (64, 9, 32.958984375, 78.3538818359375, 36.62109375, 372251.124203369, "exponential"),
    (64, 21, 30.21240234375, 15.6402587890625, 24.71923828125, 312971.78294929117, "box"),
    (128, 11, 15.90728759765625, 45.261383056640625, 29.163360595703125, 1317260.5867415965, "box"),
]


def _classic(matrix: int = 64, **kw) -> PhantomConfig:
    return PhantomConfig(
        acquisition=acquisition_preset("seed", matrix=matrix, **kw), model="classic"
    )


@pytest.mark.parametrize(("matrix", "seed", "core", "penumbra", "olig", "cbf_sum", "shape"), BEFORE)
def test_same_volumes_as_before(matrix, seed, core, penumbra, olig, cbf_sum, shape, classic_128):
    ph = (
        classic_128
        if (matrix, seed) == (128, 11)
        else simulate_patient(_classic(matrix), seed=seed)
    )
    v = ph.truth.volumes_ml
    assert (v["core"], v["penumbra"], v["oligaemia"]) == (core, penumbra, olig)
    assert ph.truth.params["residue_shape"] == shape
    assert ph.truth.params["model"] == "classic"
    # The map is float32 and numpy's float32 exp and log take the CPU's SIMD path: the sum
    # moved by 8e-8 (relative) from the machine that recorded it to another one; any
    # change to the phantom itself moves it by far more.
    assert float(ph.truth.maps["cbf"].astype(np.float64).sum()) == pytest.approx(cbf_sum, rel=1e-6)


def test_area_ratio_gives_cbv():
    acq = {"n_frames": 300, "frame_interval_s": 1.0}
    ph = simulate_patient(_classic(**acq), seed=5, normal=False, noise=False)
    f = ph.truth.fractions
    sel = ph.truth.masks["brain"] & (f.artery == 0) & (f.vein == 0) & (f.scalp == 0)
    delta = ph.study.frames[sel] - ph.study.frames[sel][:, :1]
    ratio = np.trapezoid(delta, ph.study.times, axis=1) / np.trapezoid(ph.truth.aif, ph.study.times)
    rel = HEMATOCRIT_FACTOR / BRAIN_DENSITY * 100 * ratio / ph.truth.maps["cbv"][sel] - 1
    assert np.median(np.abs(rel)) < 0.01 and np.percentile(np.abs(rel), 99) < 0.03


def test_zones_have_the_classic_gaps(classic_128):
    """Core rCBF < 30 % and low CBV; penumbra Tmax > 6 s with kept CBV; oligaemia Tmax < 6 s;
    healthy tissue has no delay. (The gaps the default model removes.)"""
    m, masks = classic_128.truth.maps, classic_128.truth.masks
    healthy = masks["brain"] & ~masks["hypoperfusion"] & ~masks["oligaemia"]
    assert np.mean(m["cbf"][masks["core"]] < 0.3 * m["cbf"][healthy].mean()) > 0.95
    assert np.median(m["cbv"][masks["core"]]) < 0.6 * np.median(m["cbv"][healthy])
    assert np.all(m["tmax"][masks["penumbra"]] > 6.0)
    assert np.all(m["tmax"][masks["oligaemia"]] < 6.0)
    assert np.all(m["tmax"][healthy] == 0.0) and np.all(m["delay"][healthy] == 0.0)
    assert np.all(m["delay"][masks["penumbra"]] >= 6.0)
    np.testing.assert_allclose(
        m["mtt"][masks["brain"]],
        60 * m["cbv"][masks["brain"]] / m["cbf"][masks["brain"]],
        rtol=1e-4,
    )


def test_new_truth_attributes_filled(classic_128):
    t = classic_128.truth
    b = t.masks["brain"]
    assert np.all(np.isinf(t.residue_k[b])) and np.all(t.residue_label[b] == 1)  # box patient
    assert t.vof_aif_area_ratio == 1.0 and t.reference_cbf > 0
    assert set(np.unique(t.hemisphere)) == {1, 2}
    assert np.all(t.noise_sd == t.params["noise_sigma_hu"])


@pytest.mark.parametrize("shape", ["box", "exponential", "gamma"])
def test_residue_shape_changes_curves_not_maps(shape):
    ref = simulate_patient(_classic(), seed=4, residue_shape="box", noise=False)
    ph = simulate_patient(_classic(), seed=4, residue_shape=shape, noise=False)
    assert ph.truth.params["residue_shape"] == shape
    np.testing.assert_array_equal(ph.truth.maps["cbf"], ref.truth.maps["cbf"])
    np.testing.assert_array_equal(ph.truth.maps["cbv"], ref.truth.maps["cbv"])
    differs = not np.allclose(ph.study.frames, ref.study.frames, atol=0.05)
    assert differs == (shape != "box")

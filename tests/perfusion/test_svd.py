"""The SVD family: matrices, delay (in)sensitivity, oscillation index, non-uniform frames."""

from __future__ import annotations

import numpy as np
import pytest
from perfsim import simulate

from ctpmaps.errors import InputError
from ctpmaps.perfusion import BSVDModel, OSVDModel, SSVDModel
from ctpmaps.perfusion.svd import (
    cbf_from_residue,
    convolution_matrix,
    oscillation_index,
    tmax_from_residue,
    truncated_pinv,
)


def test_convolution_matrix_is_discrete_convolution() -> None:
    a = np.random.default_rng(0).uniform(size=12)
    b = np.random.default_rng(1).uniform(size=12)
    np.testing.assert_allclose(convolution_matrix(a, 0.5) @ b, 0.5 * np.convolve(a, b)[:12])


def test_truncated_pinv_drops_small_singular_values() -> None:
    m = np.diag([10.0, 5.0, 1.0])
    np.testing.assert_allclose(truncated_pinv(m, 0.2), np.diag([0.1, 0.2, 0.0]))
    np.testing.assert_allclose(truncated_pinv(m, 0.0), np.linalg.inv(m))


def test_oscillation_index_and_residue_helpers() -> None:
    smooth = np.exp(-np.arange(40) / 8.0)[None]
    rough = smooth + 0.2 * (-1.0) ** np.arange(40)
    assert oscillation_index(smooth)[0] < 0.01 < oscillation_index(rough)[0]
    assert np.isinf(oscillation_index(-smooth)[0])
    r = np.zeros((3, 8))
    r[0, 2], r[1, 6] = 1.0, 1.0
    # A rippled plateau: Tmax is where it first reaches 70 % of its maximum, not the arg-max.
    r[2, :6] = [0.0, 0.5, 1.0, 0.6, 1.05, 1.0]
    # Impulses reach 70 % 0.3 samples before their sample (linear from the one before).
    np.testing.assert_allclose(tmax_from_residue(r, 0.5), [0.85, 2.85, 0.735])
    # Circular: the second half are negative lags (index 6 of 8 is lag -2).
    np.testing.assert_allclose(tmax_from_residue(r[:2], 0.5, circular=True), [0.85, -1.15])
    assert cbf_from_residue(r, 0.01)[0] == pytest.approx(100.0)


@pytest.mark.parametrize("delay", [-2.0, 3.0])
def test_bsvd_is_delay_insensitive_where_ssvd_is_not(delay: float) -> None:
    """Same tissue, arriving on time or `delay` s late (negative: before the AIF)."""
    on_time = simulate([50.0], [4.0], 0.0, shape="gamma")
    shifted = simulate([50.0], [4.0], delay, shape="gamma")

    def ratio(cls) -> float:
        model = cls(on_time.aif, on_time.times)
        return float(model.fit(shifted.curves).cbf[0] / model.fit(on_time.curves).cbf[0])

    assert ratio(BSVDModel) == pytest.approx(1.0, abs=0.02)
    assert ratio(OSVDModel) == pytest.approx(1.0, abs=0.05)
    assert abs(ratio(SSVDModel) - 1.0) > 0.08


def test_osvd_threshold_rises_with_noise() -> None:
    clean = simulate(np.full(50, 50.0), 4.0, shape="gamma", noise=0.5)
    noisy = simulate(np.full(50, 50.0), 4.0, shape="gamma", noise=8.0)
    model = OSVDModel(clean.aif, clean.times)
    low, high = model.fit(clean.curves).threshold, model.fit(noisy.curves).threshold
    assert np.median(high) > np.median(low)
    fit = model.fit(noisy.curves)
    assert np.all(oscillation_index(fit.residue) <= 0.035 + 1e-6) or np.any(fit.threshold == 1)


def test_ssvd_threshold_is_a_parameter() -> None:
    data = simulate([60.0], [3.0], shape="box", noise=0.0)
    low = SSVDModel(data.aif, data.times, threshold=0.05).fit(data.curves).cbf[0]
    high = SSVDModel(data.aif, data.times, threshold=0.4).fit(data.curves).cbf[0]
    assert high < low
    with pytest.raises(InputError, match="threshold"):
        SSVDModel(data.aif, data.times, threshold=1.5)
    with pytest.raises(InputError, match="oi_limit"):
        OSVDModel(data.aif, data.times, oi_limit=0.0)


@pytest.mark.parametrize("cls", [SSVDModel, BSVDModel, OSVDModel])
def test_non_uniform_frames_are_resampled(cls) -> None:
    """A shuttle-like protocol: 1 s frames for the first pass, then 3 s apart."""
    times = np.concatenate([np.arange(0.0, 20.0, 1.0), np.arange(20.0, 50.0, 3.0)])
    uniform = simulate([40.0, 20.0], [4.0, 8.0], shape="gamma", times=np.arange(0.0, 50.0, 1.0))
    sparse = simulate([40.0, 20.0], [4.0, 8.0], shape="gamma", times=times)
    m = cls(sparse.aif, times)
    assert m.resampled and np.allclose(np.diff(m.grid), 1.0)
    fit = m.fit(sparse.curves.astype(np.float32))
    ref = cls(uniform.aif, uniform.times).fit(uniform.curves.astype(np.float32))
    # oSVD's threshold follows the (interpolated, smoother) tail: a little more spread.
    np.testing.assert_allclose(fit.cbf, ref.cbf, rtol=0.1 if cls is OSVDModel else 0.05)
    np.testing.assert_allclose(fit.cbv, ref.cbv, rtol=0.02)
    assert fit.predict().shape == sparse.curves.shape


def test_residue_lengths() -> None:
    data = simulate([40.0], [4.0])
    assert SSVDModel(data.aif, data.times).fit(data.curves).residue.shape == (1, 89)
    assert BSVDModel(data.aif, data.times).fit(data.curves).residue.shape == (1, 180)

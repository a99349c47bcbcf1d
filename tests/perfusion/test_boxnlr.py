"""The box NLR: forward model, tables, noise-free truth, agreement with the seed's simplex."""

from __future__ import annotations

import numpy as np
import pytest
from perfsim import FINE, gamma_aif, simulate
from scipy.optimize import minimize

from ctpmaps.errors import InputError
from ctpmaps.perfusion import BoxNLRModel
from ctpmaps.perfusion._aifspline import aif_second_integral
from ctpmaps.perfusion._boxsolve import ShiftTable
from ctpmaps.perfusion._residues import gamma_ramps
from ctpmaps.perfusion.boxnlr import aif_integral, aif_knots, box_curves, box_sse
from ctpmaps.physics import residue, tissue_scale

T = np.arange(89) * 0.5


def test_aif_integral_is_exact_for_a_linear_aif() -> None:
    times = np.array([0.0, 1.0, 3.0])
    aif = np.array([0.0, 2.0, 2.0])
    integral, value = aif_integral(np.array([-1.0, 0.5, 1.0, 2.0, 3.0, 4.0]), times, aif)
    np.testing.assert_allclose(value, [0, 1, 2, 2, 2, 2])
    np.testing.assert_allclose(integral, [0, 0.25, 1, 3, 5, 7])


def test_box_model_matches_a_fine_convolution() -> None:
    """The forward model is the box residue convolved with the (spline) AIF."""
    knots = aif_knots(T, gamma_aif(T))
    tf = np.arange(0.0, 60.0, FINE)
    a_fine = np.interp(tf, *knots, left=0.0)
    for mtt, delay in [(4.0, 0.0), (1.3, 2.25), (12.0, 5.1), (0.05, 1.0)]:
        r = residue(tf - delay, mtt, "box")
        ref = tissue_scale() * 50.0 * np.convolve(a_fine, r)[: tf.size] * FINE
        got = box_curves(T, knots, 50.0, mtt, delay, scale=tissue_scale())[0]
        np.testing.assert_allclose(got, np.interp(T, tf, ref), atol=2e-3 * ref.max())


@pytest.mark.parametrize(
    "times", [T, np.concatenate([np.arange(0, 20.0, 1.0), np.arange(20, 50, 3.0)])]
)
def test_shift_table_matches_the_exact_integral(times) -> None:
    knots = aif_knots(times, gamma_aif(times))
    table = ShiftTable(times, knots, -5.0, 40.0, 2.0, np.float64)
    x = np.random.default_rng(0).uniform(-5.0, 40.0, 200)
    integral, value, _ = table(x)
    ref_i, ref_v = aif_integral(times[None] - x[:, None], *knots)
    tol = 1e-12 if times is T else 1e-3  # exact on uniform frames, O(h^2) otherwise
    np.testing.assert_allclose(integral, 2.0 * ref_i, atol=tol * np.abs(ref_i).max() * 2)
    np.testing.assert_allclose(value, 2.0 * ref_v, atol=tol * 20 * np.abs(ref_v).max())


@pytest.mark.parametrize(
    "times", [T, np.concatenate([np.arange(0, 20.0, 1.0), np.arange(20, 50, 3.0)])]
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_ramp_sums_match_the_exact_integrals(times, dtype) -> None:
    """The compiled sums over a ramp residue's nodes equal the same sums of the AIF's exact
    integrals (`_aifspline`) at every node's shift."""
    knots = aif_knots(times, gamma_aif(times))
    table = ShiftTable(times, knots, -2.0, 30.0, 2.0, dtype)
    rng = np.random.default_rng(1)
    d, m = rng.uniform(-2.0, 8.0, 50), rng.uniform(0.5, 6.0, 50)
    ramps = gamma_ramps(2.0)
    assert np.all(d + max(ramps.coefs) * m < 30.0)  # inside the table
    got = table.ramp_sums(d, m, np.array(ramps.coefs), np.array(ramps.weights))
    want = [np.zeros((d.size, times.size)) for _ in range(6)]
    for c, w in zip(ramps.coefs, ramps.weights, strict=True):
        shift = times[None] - (d + c * m)[:, None]
        big, value = aif_integral(shift, *knots)
        second = aif_second_integral(shift, *knots)
        for k, v in enumerate((second, big, c * big, value, c * value, c * c * value)):
            want[k] += 2.0 * w * v
    assert [g.dtype for g in got] == [np.float64] * 3 + [np.dtype(dtype)] * 3
    tol = (1e-9 if times is T else 2e-3) * (1e3 if dtype is np.float32 else 1)
    for g, v in zip(got, want, strict=True):
        np.testing.assert_allclose(g, v, atol=tol * np.abs(v).max())


def test_ramp_state_is_the_profiled_fit_and_its_derivatives() -> None:
    """The compiled Newton system of a ramp residue equals its definition evaluated with
    numpy from the node sums, and its products with the derivative curves match central
    differences of the model curve in onset and MTT; a curve that correlates negatively
    with the model gets no flow."""
    knots = aif_knots(T, gamma_aif(T))
    table = ShiftTable(T, knots, -2.0, 30.0, 2.0, np.float64)
    ramps = gamma_ramps(1.5)
    coefs, weights = np.array(ramps.coefs), np.array(ramps.weights)
    rng = np.random.default_rng(2)
    d, m = rng.uniform(0.0, 6.0, 20), rng.uniform(2.0, 5.0, 20)

    def curves(d, m):
        s_aa = table.ramp_sums(d, m, coefs, weights)[0]
        return table(d)[0] - s_aa / m[:, None]

    g = curves(d, m)
    y = 30.0 * g + rng.normal(0.0, 2.0, g.shape)
    y[0] = -y[0]
    state = table.ramp_state(y, d, m, coefs, weights, True)
    gg, yg = np.einsum("ij,ij->i", g, g), np.einsum("ij,ij->i", y, g)
    f = np.where(yg > 0, yg / gg, 0.0)
    r = y - f[:, None] * g
    np.testing.assert_allclose(state[:, 0], f, rtol=1e-9)
    assert state[0, 0] == 0.0
    np.testing.assert_allclose(state[:, 1], 1 / gg, rtol=1e-9)
    np.testing.assert_allclose(state[:, 2], np.einsum("ij,ij->i", r, r), rtol=1e-9)
    eps = 1e-4
    for col, (dd, dm) in ((3, (eps, 0.0)), (4, (0.0, eps))):
        up, down = curves(d + dd, m + dm), curves(d - dd, m - dm)
        g_i = (up - down) / (2 * eps)
        # Central differences are good to about 1e-5 of the curves' scale here (the AIF's
        # slope jumps at its knots): compare each product on the scale of its factors.
        for k, u in ((col, g), (col + 2, r)):
            scale = np.sqrt(np.einsum("ij,ij->i", u, u) * np.einsum("ij,ij->i", g_i, g_i))
            assert np.all(np.abs(state[:, k] - np.einsum("ij,ij->i", u, g_i)) < 1e-5 * scale)


@pytest.mark.parametrize("delay", [0.0, 1.7, 6.0])
def test_noise_free_box_truth_within_two_percent(delay: float) -> None:
    cbf = np.array([60.0, 25.0, 20.0, 10.0, 45.0])
    mtt = np.array([4.0, 4.8, 10.0, 8.0, 2.0])
    data = simulate(cbf, mtt, delay, shape="box")
    fit = BoxNLRModel(data.aif, data.times).fit(data.curves.astype(np.float32))
    np.testing.assert_allclose(fit.cbf, cbf, rtol=0.02)
    np.testing.assert_allclose(fit.mtt, mtt, rtol=0.02)
    np.testing.assert_allclose(fit.cbv, cbf * mtt / 60, rtol=0.02)
    np.testing.assert_allclose(fit.delay, delay, atol=0.05)
    np.testing.assert_allclose(fit.tmax, fit.delay)  # a box first reaches its maximum at onset


def test_noise_free_box_on_non_uniform_frames() -> None:
    times = np.concatenate([np.arange(0, 20.0, 1.0), np.arange(20.0, 50.0, 3.0)])
    data = simulate([50.0, 20.0], [4.0, 9.0], 1.0, times=times)
    fit = BoxNLRModel(data.aif, times).fit(data.curves)
    np.testing.assert_allclose(fit.cbf, [50.0, 20.0], rtol=0.03)
    np.testing.assert_allclose(fit.mtt, [4.0, 9.0], rtol=0.03)


def test_no_worse_than_the_seeds_simplex() -> None:
    """On noisy curves, the fast fit's SSE is no worse than a per-voxel downhill simplex's
    (300 iterations from CBF 60, MTT 5 s, delay 3.5 s), where the simplex stays in bounds
    (CBF >= 0, delay at least half a frame interval before the AIF's, MTT >= 2 s)."""
    data = simulate([50, 25, 20, 60, 15, 35], [4, 5, 9, 3.5, 8, 5], [0.5, 1, 3, 0, 4, 2], noise=4.0)
    model = BoxNLRModel(data.aif, data.times)
    fit = model.fit(data.curves.astype(np.float32))
    p = fit.params
    fast = box_sse(
        data.curves, T, model.aif_knots, p["cbf"], p["mtt"], p["delay"], scale=model.scale
    )
    for i, y in enumerate(data.curves):

        def sse(q: np.ndarray, y: np.ndarray = y) -> float:
            c = box_curves(T, model.aif_knots, q[0], q[1], q[2], scale=model.scale)[0]
            return float(((y - c) ** 2).sum())

        res = minimize(sse, [60.0, 5.0, 3.5], method="Nelder-Mead", options={"maxiter": 300})
        lo = (0.0, model.mtt_bounds[0], model.delay_bounds[0])
        if all(v >= b for v, b in zip(res.x, lo, strict=True)):
            assert fast[i] <= res.fun * (1 + 1e-6), (i, res.x, fast[i], res.fun)
    np.testing.assert_allclose(fit.sse[:], fast, rtol=1e-4)


def test_bounds_and_sign_options() -> None:
    # A tissue curve earlier than the AIF: the default keeps the onset at most half a
    # frame interval before the AIF's.
    data = simulate([40.0], [5.0], -2.0)
    fit = BoxNLRModel(data.aif, data.times).fit(data.curves)
    assert fit.delay[0] == pytest.approx(-0.5 * np.median(np.diff(data.times)))
    free = BoxNLRModel(data.aif, data.times, delay_bounds=(-5.0, 10.0)).fit(data.curves)
    assert free.delay[0] == pytest.approx(-2.0, abs=0.05)
    assert free.params["sse"][0] < fit.params["sse"][0]
    # A negative curve: CBF 0 by default, a negative box when allowed.
    neg = -simulate([40.0], [5.0], 1.0).curves
    assert BoxNLRModel(data.aif, data.times).fit(neg).cbf[0] == 0.0
    assert np.isnan(BoxNLRModel(data.aif, data.times).fit(neg).mtt[0])
    signed = BoxNLRModel(data.aif, data.times, nonnegative=False).fit(neg)
    assert signed.cbf[0] == pytest.approx(-40.0, rel=0.02)
    with pytest.raises(InputError, match="mtt_bounds"):
        BoxNLRModel(data.aif, data.times, mtt_bounds=(0.0, 10.0))
    with pytest.raises(InputError, match="delay_bounds"):
        BoxNLRModel(data.aif, data.times, delay_bounds=(5.0, 1.0))
    for shapes in ((2.0, 0.0), (-1.5,), (np.inf,)):  # gamma > 0, spreads in [-1, 0)
        with pytest.raises(InputError, match="shapes"):
            BoxNLRModel(data.aif, data.times, shapes=shapes)


def test_chunks_and_threads_give_the_same_fit() -> None:
    data = simulate(np.full(300, 40.0), 5.0, 1.0, noise=3.0, seed=3)
    y = data.curves.astype(np.float32)
    a = BoxNLRModel(data.aif, data.times, workers=1).fit(y)
    b = BoxNLRModel(data.aif, data.times, workers=2, chunk_size=64).fit(y)
    np.testing.assert_allclose(a.params["sse"], b.params["sse"], rtol=1e-5)

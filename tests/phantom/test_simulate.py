"""Simulation common to both models: noise texture, anatomy, vessels, seeds, protocols."""

from __future__ import annotations

import numpy as np
import pytest

from ctpmaps.phantom import (
    HeterogeneousSettings,
    PhantomConfig,
    acquisition_preset,
    simulate_patient,
)
from ctpmaps.phantom.noise import add_ct_noise, noise_sigma_on_grid


def test_noise_is_spatially_correlated_not_temporally():
    """Filtered back-projection texture at 0.49 mm: neighbours correlated, a negative lobe
    at 3 pixels, independent between frames; SD as asked."""
    frames = np.zeros((512, 512, 2, 4), np.float32)
    add_ct_noise(frames, 12.0, 250 / 512, np.random.default_rng(0))
    lag = [np.corrcoef(frames[:-k].ravel(), frames[k:].ravel())[0, 1] for k in (1, 3)]
    lag_t = np.corrcoef(frames[..., :-1].ravel(), frames[..., 1:].ravel())[0, 1]
    assert lag[0] > 0.5 and lag[1] < 0
    assert abs(lag_t) < 0.02
    assert frames.std() == pytest.approx(12.0, rel=0.02)


def test_noise_scaled_locally_by_relative_sd():
    frames = np.zeros((128, 128, 2, 6), np.float32)
    rel = np.ones((128, 128, 2), np.float32)
    rel[:, :, 1] = 2.0
    add_ct_noise(frames, 5.0, 250 / 128, np.random.default_rng(1), relative_sd=rel)
    assert frames[:, :, 0].std() == pytest.approx(5.0, rel=0.03)
    assert frames[:, :, 1].std() == pytest.approx(10.0, rel=0.03)


def test_classic_noise_is_uniform_at_the_grid_level(classic_128):
    """The classic preset: one SD everywhere, the band-limited share of 12 HU at 128."""
    coarse = (classic_128.study.frames - classic_128.truth.noise_free).std()
    assert coarse == pytest.approx(noise_sigma_on_grid(12.0, 128, 250 / 128), rel=0.1)
    assert 0.5 * 12 < coarse < 0.75 * 12


def test_grey_matter_perfuses_more_than_white(stroke_128):
    t = stroke_128.truth
    side = t.params["lesion"]["side"]
    healthy = t.masks["brain"] & (t.hemisphere == (2 if side == "left" else 1))
    gm = healthy & (t.fractions.gm > 0.8)
    wm = healthy & (t.fractions.wm > 0.8)
    assert gm.sum() > 100 and wm.sum() > 100
    ratio = np.median(t.maps["cbf"][gm]) / np.median(t.maps["cbf"][wm])
    assert 2.0 < ratio < 3.2  # literature: GM/WM CBF about 2.5
    assert 30 < np.median(t.maps["cbf"][gm]) < 90
    assert 3 < np.median(t.maps["mtt"][gm]) < 6


@pytest.mark.parametrize("fixture", ["stroke_128", "classic_128"])
def test_vessels_partial_volume_lowers_artery_peaks(fixture, request):
    ph = request.getfixturevalue(fixture)
    nf = ph.truth.noise_free
    enh = nf - nf[..., :1]
    art = ph.truth.fractions.artery > 0.3
    best_artery = enh[art].max()
    assert 0.5 * ph.truth.aif.max() < best_artery < 0.99 * ph.truth.aif.max()
    vein = ph.truth.fractions.vein > 0.6
    assert vein.sum() > 5
    assert enh[vein].max() > 0.6 * ph.truth.vof.max()
    assert np.argmax(ph.truth.vof) > np.argmax(ph.truth.aif)  # the sinus fills later


@pytest.mark.parametrize("model", ["heterogeneous", "classic"])
def test_seed_reproducible_and_distinct(model):
    cfg = PhantomConfig(acquisition=acquisition_preset("seed", matrix=64), model=model)
    a = simulate_patient(cfg, seed=9)
    b = simulate_patient(cfg, seed=9)
    c = simulate_patient(cfg, seed=10)
    np.testing.assert_array_equal(a.study.frames, b.study.frames)
    assert not np.array_equal(a.study.frames, c.study.frames)
    assert a.truth.params["pose"] != c.truth.params["pose"]


def test_default_is_the_heterogeneous_model():
    assert PhantomConfig().model == "heterogeneous"
    ph = simulate_patient(PhantomConfig(acquisition=acquisition_preset("seed", matrix=64)), seed=1)
    assert ph.truth.params["model"] == "heterogeneous"
    assert ph.truth.params["residue_shape"] == "mixed"


def test_shuttle_preset():
    cfg = PhantomConfig(acquisition=acquisition_preset("shuttle", matrix=64))
    ph = simulate_patient(cfg, seed=1)
    assert ph.study.frames.shape == (64, 64, 16, 18)
    np.testing.assert_allclose(np.diff(ph.study.times), 2.8)
    assert ph.study.spacing == pytest.approx((250 / 64, 250 / 64, 5.0))


def test_frame_times_off_the_fine_grid():
    """Frames between fine-grid samples read the curves by interpolation: the same patient
    sampled 0.02 s later differs by what the curves change in 0.02 s."""
    regular = acquisition_preset("seed", matrix=64, n_frames=40)
    times = tuple(float(t) + (0.02 if t > 0 else 0.0) for t in regular.times)
    shifted = acquisition_preset("seed", matrix=64, n_frames=40, frame_times_s=times)
    a = simulate_patient(PhantomConfig(acquisition=regular), seed=2, noise=False)
    b = simulate_patient(PhantomConfig(acquisition=shifted), seed=2, noise=False)
    diff = np.abs(b.study.frames - a.study.frames)[a.truth.masks["brain"]]
    slope = np.abs(np.gradient(a.study.frames, 0.5, axis=-1))[a.truth.masks["brain"]]
    assert diff.max() > 0
    assert np.all(diff <= 0.02 * slope + 0.05)


def test_motion_within_limits_and_registered_frames_kept():
    cfg = PhantomConfig(
        acquisition=acquisition_preset("seed", matrix=64, n_frames=20),
        motion_mm=3.0,
        motion_deg=3.0,
    )
    ph = simulate_patient(cfg, seed=8)
    m = ph.truth.motion
    assert m.shape == (20, 6) and np.any(m != 0)
    assert np.abs(m[:, :3]).max() <= 3.0 and np.abs(m[:, 3:]).max() <= 3.0
    assert np.all(m[0] == 0)  # the first frame is the reference
    moved = np.any(m != 0, axis=1)
    assert not np.allclose(ph.study.frames[..., moved], ph.truth.registered[..., moved])
    np.testing.assert_array_equal(ph.study.frames[..., ~moved], ph.truth.registered[..., ~moved])
    # Moving a thin slab must not pull air into its edge slices: the brain's
    # median stays close to the motion-free one (air there made it fall by > 100 HU).
    b = ph.truth.masks["brain"]
    diff = np.median(ph.study.frames[b], 0) - np.median(ph.truth.registered[b], 0)
    assert np.abs(diff).max() < 3.0


def test_bad_settings_rejected():
    with pytest.raises(ValueError, match="matrix"):
        acquisition_preset("seed", matrix=8)
    with pytest.raises(ValueError, match="preset"):
        acquisition_preset("helical")
    with pytest.raises(ValueError, match="exposure_mas"):
        acquisition_preset("seed", exposure_mas=0)
    with pytest.raises(ValueError, match="model"):
        PhantomConfig(model="gamma")
    with pytest.raises(ValueError, match="vof_area_ratio"):
        HeterogeneousSettings(vof_area_ratio=(0.9, 1.2))
    with pytest.raises(ValueError, match="healthy_delay_s"):
        HeterogeneousSettings(healthy_delay_s=(1.0, 0.5))
    with pytest.raises(ValueError, match="residue_shape"):
        simulate_patient(PhantomConfig(), residue_shape="lognormal")

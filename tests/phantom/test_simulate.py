"""The phantom against its own truth: indicator dilution, noise, lesion, vessels."""

from __future__ import annotations

import numpy as np
import pytest

from ctpmaps.phantom import PhantomConfig, acquisition_preset, simulate_patient
from ctpmaps.phantom.simulate import noise_sigma_on_grid
from ctpmaps.physics import BRAIN_DENSITY, HEMATOCRIT_FACTOR


def _pure_tissue(ph) -> np.ndarray:
    f = ph.truth.fractions
    return ph.truth.masks["brain"] & (f.artery == 0) & (f.vein == 0) & (f.scalp == 0)


def test_area_ratio_gives_cbv(long_noise_free):
    """CBV = (kappa / rho) * 100 * ∫ΔC_tissue / ∫C_a for every brain voxel."""
    ph = long_noise_free
    sel = _pure_tissue(ph)
    delta = ph.study.frames[sel] - ph.study.frames[sel][:, :1]
    ratio = np.trapezoid(delta, ph.study.times, axis=1) / np.trapezoid(ph.truth.aif, ph.study.times)
    cbv = HEMATOCRIT_FACTOR / BRAIN_DENSITY * 100 * ratio
    rel = cbv / ph.truth.maps["cbv"][sel] - 1
    assert sel.sum() > 3000
    assert np.median(np.abs(rel)) < 0.01
    assert np.percentile(np.abs(rel), 99) < 0.03


def test_maps_are_consistent(long_noise_free):
    """MTT = 60 CBV / CBF; every lesion voxel has the delay of its zone."""
    m, masks = long_noise_free.truth.maps, long_noise_free.truth.masks
    b = masks["brain"]
    np.testing.assert_allclose(m["mtt"][b], 60 * m["cbv"][b] / m["cbf"][b], rtol=1e-4)
    assert np.all(m["delay"][masks["penumbra"]] >= 6.0)
    assert np.all(m["delay"][b & ~masks["hypoperfusion"] & ~masks["oligaemia"]] == 0)


def test_noise_sigma_follows_dose(stroke_128):
    """SD as set (12 HU at 150 mAs on 0.49 mm pixels), x sqrt(2) at half the dose, and the
    band-limited share of it on a coarser grid."""
    for mas, expected in ((150, 12.0), (75, 12.0 * np.sqrt(2))):
        cfg = PhantomConfig(
            acquisition=acquisition_preset("seed", matrix=512, n_frames=3, exposure_mas=mas)
        )
        ph = simulate_patient(cfg, seed=11, normal=False, keep_noise_free=True)
        sigma = (ph.study.frames - ph.truth.noise_free).std()
        assert abs(sigma / expected - 1) < 0.1, (mas, sigma)
    coarse = (stroke_128.study.frames - stroke_128.truth.noise_free).std()
    assert abs(coarse / noise_sigma_on_grid(12.0, 128, 250 / 128) - 1) < 0.1
    assert 0.5 * 12 < coarse < 0.75 * 12


def test_noise_is_spatially_correlated_not_temporally():
    cfg = PhantomConfig(acquisition=acquisition_preset("seed", matrix=512, n_frames=4))
    ph = simulate_patient(cfg, seed=2, keep_noise_free=True)
    n = ph.study.frames - ph.truth.noise_free
    lag = [np.corrcoef(n[:-k].ravel(), n[k:].ravel())[0, 1] for k in (1, 3)]
    lag_t = np.corrcoef(n[..., :-1].ravel(), n[..., 1:].ravel())[0, 1]
    # Filtered back-projection noise: neighbours correlated, then a negative lobe ...
    assert lag[0] > 0.5 and lag[1] < 0
    assert abs(lag_t) < 0.02  # ... and independent between frames


def test_lesion_volumes_as_configured(stroke_128):
    p = stroke_128.truth.params
    target, got = p["lesion"]["target_volumes_ml"], p["volumes_ml"]
    voxel_ml = 250 / 128 * 250 / 128 * 5 / 1000
    for key in ("core", "hypoperfusion"):
        assert abs(got[key] - target[key]) <= max(0.01 * target[key], 2 * voxel_ml), key
    assert abs(got["penumbra"] - (got["hypoperfusion"] - got["core"])) < 1e-6
    lo, hi = PhantomConfig().core_volume_ml
    assert 0 < got["core"] <= hi


def test_lesion_zones_meet_clinical_definitions(stroke_128):
    """Core rCBF < 30 % and low CBV; penumbra Tmax > 6 s with kept CBV; oligaemia Tmax < 6 s."""
    m, masks = stroke_128.truth.maps, stroke_128.truth.masks
    healthy = masks["brain"] & ~masks["hypoperfusion"] & ~masks["oligaemia"]
    assert np.mean(m["cbf"][masks["core"]] < 0.3 * m["cbf"][healthy].mean()) > 0.95
    assert np.median(m["cbv"][masks["core"]]) < 0.6 * np.median(m["cbv"][healthy])
    assert np.all(m["tmax"][masks["penumbra"]] > 6.0)
    assert np.median(m["cbv"][masks["penumbra"]]) > 0.8 * np.median(m["cbv"][healthy])
    assert np.all(m["tmax"][masks["oligaemia"]] < 6.0)
    assert np.all(m["tmax"][healthy] == 0.0)
    assert np.median(m["cbf"][masks["penumbra"]]) < np.median(m["cbf"][healthy])


def test_normal_patient_has_no_lesion():
    cfg = PhantomConfig(acquisition=acquisition_preset("seed", matrix=64))
    ph = simulate_patient(cfg, seed=3, normal=True)
    assert all(v == 0 for v in ph.truth.volumes_ml.values())
    assert not ph.truth.maps["delay"].any()
    assert ph.truth.params["lesion"]["side"] is None


def test_grey_matter_perfuses_more_than_white(stroke_128):
    t = stroke_128.truth
    healthy = t.masks["brain"] & ~t.masks["hypoperfusion"] & ~t.masks["oligaemia"]
    gm = healthy & (t.fractions.gm > 0.8)
    wm = healthy & (t.fractions.wm > 0.8)
    assert gm.sum() > 100 and wm.sum() > 100
    ratio = np.median(t.maps["cbf"][gm]) / np.median(t.maps["cbf"][wm])
    assert 2.0 < ratio < 3.2  # literature: GM/WM CBF about 2.5
    assert 30 < np.median(t.maps["cbf"][gm]) < 90
    assert 3 < np.median(t.maps["mtt"][gm]) < 6


def test_vessels_partial_volume_lowers_artery_peaks(stroke_128):
    ph = stroke_128
    nf = ph.truth.noise_free
    enh = nf - nf[..., :1]
    art = ph.truth.fractions.artery > 0.3
    best_artery = enh[art].max()
    assert 0.5 * ph.truth.aif.max() < best_artery < 0.99 * ph.truth.aif.max()
    vein = ph.truth.fractions.vein > 0.9
    assert vein.sum() > 5
    assert enh[vein].max() > 0.9 * ph.truth.vof.max()
    # The sinus fills later than the arteries.
    assert np.argmax(ph.truth.vof) > np.argmax(ph.truth.aif)


@pytest.mark.parametrize("shape", ["box", "exponential", "gamma"])
def test_residue_shape_changes_curves_not_maps(shape):
    cfg = PhantomConfig(acquisition=acquisition_preset("seed", matrix=64))
    ref = simulate_patient(cfg, seed=4, residue_shape="box", noise=False)
    ph = simulate_patient(cfg, seed=4, residue_shape=shape, noise=False)
    assert ph.truth.params["residue_shape"] == shape
    np.testing.assert_array_equal(ph.truth.maps["cbf"], ref.truth.maps["cbf"])
    np.testing.assert_array_equal(ph.truth.maps["cbv"], ref.truth.maps["cbv"])
    differs = not np.allclose(ph.study.frames, ref.study.frames, atol=0.05)
    assert differs == (shape != "box")


def test_seed_reproducible_and_distinct():
    cfg = PhantomConfig(acquisition=acquisition_preset("seed", matrix=64))
    a = simulate_patient(cfg, seed=9)
    b = simulate_patient(cfg, seed=9)
    c = simulate_patient(cfg, seed=10)
    np.testing.assert_array_equal(a.study.frames, b.study.frames)
    assert not np.array_equal(a.study.frames, c.study.frames)
    assert a.truth.params["pose"] != c.truth.params["pose"]


def test_shuttle_preset():
    cfg = PhantomConfig(acquisition=acquisition_preset("shuttle", matrix=64))
    ph = simulate_patient(cfg, seed=1)
    assert ph.study.frames.shape == (64, 64, 16, 18)
    np.testing.assert_allclose(np.diff(ph.study.times), 2.8)
    assert ph.study.spacing == pytest.approx((250 / 64, 250 / 64, 5.0))


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


def test_bad_acquisition_rejected():
    with pytest.raises(ValueError, match="matrix"):
        acquisition_preset("seed", matrix=8)
    with pytest.raises(ValueError, match="preset"):
        acquisition_preset("helical")
    with pytest.raises(ValueError, match="exposure_mas"):
        acquisition_preset("seed", exposure_mas=0)

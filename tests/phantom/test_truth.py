"""The default phantom against its own truth, each relation recomputed independently."""

from __future__ import annotations

import numpy as np
import pytest

from ctpmaps.phantom import (
    HeterogeneousSettings,
    PhantomConfig,
    acquisition_preset,
    simulate_patient,
)
from ctpmaps.phantom.noise import noise_sigma_on_grid
from ctpmaps.physics import BRAIN_DENSITY, HEMATOCRIT_FACTOR


def _pure_tissue(ph) -> np.ndarray:
    f = ph.truth.fractions
    return ph.truth.masks["brain"] & (f.artery == 0) & (f.vein == 0) & (f.scalp == 0)


def _other_hemisphere(truth) -> np.ndarray:
    side = truth.params["lesion"]["side"]
    if side is None:
        return np.ones(truth.hemisphere.shape, bool)
    return truth.hemisphere == (2 if side == "left" else 1)


def test_area_ratio_gives_cbv(long_noise_free):
    """CBV = (kappa / rho) * 100 * ∫ΔC_tissue / ∫C_a within 1 % on curves that return to
    baseline, for every residue shape and delay the patient has."""
    ph = long_noise_free
    sel = _pure_tissue(ph)
    curves = ph.study.frames[sel]
    assert np.abs(curves[:, -1] - curves[:, 0]).max() < 1e-3  # back at baseline
    delta = curves - curves[:, :1]
    ratio = np.trapezoid(delta, ph.study.times, axis=1) / np.trapezoid(ph.truth.aif, ph.study.times)
    cbv = HEMATOCRIT_FACTOR / BRAIN_DENSITY * 100 * ratio
    rel = cbv / ph.truth.maps["cbv"][sel] - 1
    assert sel.sum() > 1000
    assert np.abs(rel).max() < 0.01
    assert len(np.unique(ph.truth.residue_label[sel])) == 3  # box-like to exponential-like


def test_mtt_is_cbv_over_cbf(stroke_128):
    m, b = stroke_128.truth.maps, stroke_128.truth.masks["brain"]
    np.testing.assert_allclose(m["mtt"][b], 60 * m["cbv"][b] / m["cbf"][b], rtol=1e-5)


def test_tmax_of_undispersed_box_is_its_delay():
    """With a box residue and no transport dispersion, true Tmax equals the delay; with
    dispersion it is later (box residues are flat, so the transport kernel's rise sets it)."""
    cfg = PhantomConfig(acquisition=acquisition_preset("seed", matrix=64))
    ph = simulate_patient(cfg, seed=4, normal=False, residue_shape="box", noise=False)
    t = ph.truth
    b = t.masks["brain"]
    assert np.all(np.isinf(t.residue_k[b]))
    undispersed = b & (t.dispersion == 0)
    assert undispersed.sum() > 50
    np.testing.assert_array_equal(t.maps["tmax"][undispersed], t.maps["delay"][undispersed])
    dispersed = b & (t.dispersion > 0.5)
    assert dispersed.sum() > 20
    assert np.all(t.maps["tmax"][dispersed] > t.maps["delay"][dispersed])


def test_response_peak_is_the_height_of_transport_times_residue():
    """The effective impulse response's height against closed forms written here: a box
    of width M through an exponential kernel of time constant tau peaks at
    1 - exp(-M / tau); an exponential residue of MTT M at (M / (M - tau)) (exp(-t / M) -
    exp(-t / tau)) taken at its maximum t* = M tau ln(M / tau) / (M - tau)."""
    cfg = PhantomConfig(acquisition=acquisition_preset("seed", matrix=64))
    for shape in ("box", "exponential"):
        t = simulate_patient(cfg, seed=4, normal=False, residue_shape=shape, noise=False).truth
        b = t.masks["brain"]
        m, tau, peak = t.maps["mtt"][b], t.dispersion[b].astype(float), t.response_peak[b]
        d = tau > 0.5
        assert d.sum() > 20 and (~d).sum() > 50
        expected = np.ones_like(m)
        on = tau > 0
        m, tau = m[on], tau[on]
        if shape == "box":
            expected[on] = 1.0 - np.exp(-m / tau)
        else:
            ts = m * tau * np.log(m / tau) / (m - tau)
            expected[on] = m / (m - tau) * (np.exp(-ts / m) - np.exp(-ts / tau))
        # the fine grid's 0.05 s cells: within 1 %
        np.testing.assert_allclose(peak, expected, rtol=0.01, err_msg=shape)
    assert np.median(peak[d]) < 0.9  # exponential, dispersed by more than 0.5 s


def test_truth_masks_follow_the_documented_rule(stroke_128):
    """Recompute reference and masks from the true maps: Tmax > 6 s, CBF < 0.30 x the
    median of healthy (Tmax < 4 s) brain in the other hemisphere, oligaemia delay > 2 s."""
    t = stroke_128.truth
    m, b = t.maps, t.masks["brain"]
    healthy = b & (m["tmax"] < 4.0) & _other_hemisphere(t)
    reference = float(np.median(m["cbf"][healthy]))
    assert t.reference_cbf == pytest.approx(reference, rel=1e-6)
    hypo = b & (m["tmax"] > 6.0)
    core = hypo & (m["cbf"] < 0.3 * reference)
    expected = {
        "hypoperfusion": hypo,
        "core": core,
        "penumbra": hypo & ~core,
        "severe": b & (m["tmax"] > 10.0),
        "oligaemia": b & (m["delay"] > 2.0) & (m["tmax"] <= 6.0),
    }
    voxel_ml = float(np.prod(stroke_128.study.spacing)) / 1000
    for name, mask in expected.items():
        np.testing.assert_array_equal(t.masks[name], mask, err_msg=name)
        assert t.volumes_ml[name] == pytest.approx(mask.sum() * voxel_ml)
    assert t.volumes_ml["core"] > 0 and t.volumes_ml["penumbra"] > 0


def test_lesion_has_no_gap_at_the_thresholds(strokes_64):
    """rCBF inside hypoperfusion fills every 0.05 bin from 0.1 to 0.6, and true Tmax on the
    lesion's side every 0.5 s bin from 3 to 9 s (the classic zones left both empty)."""
    rcbf, tmax = [], []
    for ph in strokes_64:
        t = ph.truth
        hypo = t.masks["hypoperfusion"]
        rcbf.append(t.maps["cbf"][hypo] / t.reference_cbf)
        tmax.append(t.maps["tmax"][t.masks["brain"] & ~_other_hemisphere(t)])
    rcbf_counts = np.histogram(np.concatenate(rcbf), np.arange(0.1, 0.601, 0.05))[0]
    tmax_counts = np.histogram(np.concatenate(tmax), np.arange(3.0, 9.01, 0.5))[0]
    assert np.all(rcbf_counts >= 10), rcbf_counts
    assert np.all(tmax_counts >= 10), tmax_counts


def test_lesion_volumes_vary(strokes_64):
    core = [ph.truth.volumes_ml["core"] for ph in strokes_64]
    hypo = [ph.truth.volumes_ml["hypoperfusion"] for ph in strokes_64]
    assert max(hypo) > 3 * min(hypo) and max(core) > 3 * min(core)
    assert all(h >= c for h, c in zip(hypo, core, strict=True))


def test_residue_shapes_mixed_and_ischaemia_dispersed(stroke_128):
    """Healthy tissue mostly box-like, the core towards exponential; labels follow k."""
    t = stroke_128.truth
    b = t.masks["brain"]
    healthy = b & _other_hemisphere(t)
    assert np.mean(t.residue_label[healthy] == 1) > 0.5
    assert np.median(t.residue_k[t.masks["core"]]) < 2.0 < np.median(t.residue_k[healthy])
    assert np.median(t.dispersion[t.masks["core"]]) > 4 * np.median(t.dispersion[healthy])
    k, label = t.residue_k[b], t.residue_label[b]
    assert set(np.unique(label)) == {1, 2, 3}
    assert np.all(k[label == 1] >= 8) and np.all(k[label == 3] <= 1.5)
    assert np.all((k[label == 2] > 1.5) & (k[label == 2] < 8))


def test_healthy_tissue_is_heterogeneous_on_the_clinical_scale(stroke_128):
    """Healthy delay within 0-1.5 s and spread; MTT spread within grey matter; true Tmax of
    healthy tissue near 0-2 s."""
    t = stroke_128.truth
    healthy = t.masks["brain"] & _other_hemisphere(t)
    delay = t.maps["delay"][healthy]
    assert delay.min() >= 0 and delay.max() <= 1.5 + 0.025 and delay.std() > 0.2
    gm = healthy & (t.fractions.gm > 0.8)
    mtt = t.maps["mtt"][gm]
    assert 0.08 < mtt.std() / mtt.mean() < 0.3
    tmax = t.maps["tmax"][healthy]
    assert np.median(tmax) < 2.0 and np.percentile(tmax, 99) < 4.0


def test_vof_area_below_aif_area(long_noise_free):
    t = long_noise_free.truth
    times = long_noise_free.study.times
    assert 0.85 <= t.vof_aif_area_ratio <= 1.0
    measured = np.trapezoid(t.vof, times) / np.trapezoid(t.aif, times)
    assert measured == pytest.approx(t.vof_aif_area_ratio, rel=2e-3)


def test_sinus_partial_volume_is_geometric(stroke_128):
    # The sinus's partial volume comes from its geometry (edges, 5 mm slices, the PSF):
    # the centre of its lumen is blood, its rim is not.
    t = stroke_128.truth
    assert t.params["sinus_fill"] == 1.0
    v = t.fractions.vein[t.fractions.vein > 0.05]
    assert v.max() > 0.98
    assert np.mean(v < 0.9) >= 0.3
    enh = t.noise_free - t.noise_free[..., :1]
    peak = enh[t.masks["vein"]].max()
    assert 0.85 * t.vof.max() < peak < t.vof.max() + 1.0


def test_sinus_fill_stress_option():
    # Below 1, every sinus voxel is part dura/CSF: no voxel reaches the blood's curve.
    cfg = PhantomConfig(
        acquisition=acquisition_preset("seed", matrix=64),
        heterogeneous=HeterogeneousSettings(sinus_fill=(0.8, 0.8)),
    )
    t = simulate_patient(cfg, seed=11, normal=False, keep_noise_free=True).truth
    assert t.params["sinus_fill"] == pytest.approx(0.8)
    assert t.fractions.vein.max() <= 0.8 + 1e-6
    enh = t.noise_free - t.noise_free[..., :1]
    assert enh[t.masks["vein"]].max() < 0.8 * t.vof.max() + 1.0


def test_noise_level_varies_as_recorded(stroke_128):
    """Measured noise SD matches the recorded map per region; higher at the skull base;
    the brain's RMS level is the configured one on this grid."""
    ph = stroke_128
    t = ph.truth
    noise = ph.study.frames - t.noise_free
    b = t.masks["brain"]
    sigma = noise_sigma_on_grid(12.0, 128, 250 / 128)
    assert np.sqrt(np.mean(t.noise_sd[b].astype(np.float64) ** 2)) == pytest.approx(sigma, 1e-4)
    measured = {}
    for z in (0, t.noise_sd.shape[2] - 1):
        region = b.copy()
        region[..., [k for k in range(b.shape[2]) if k != z]] = False
        expected = np.sqrt(np.mean(t.noise_sd[region] ** 2))
        measured[z] = noise[region].std()
        assert measured[z] == pytest.approx(expected, rel=0.05), z
    assert measured[0] > 1.1 * measured[t.noise_sd.shape[2] - 1]


def test_noise_level_follows_dose():
    """The recorded level is sqrt(2) higher at half the dose."""
    levels = []
    for mas in (150, 75):
        acq = acquisition_preset("seed", matrix=64, n_frames=2, exposure_mas=mas)
        ph = simulate_patient(PhantomConfig(acquisition=acq), seed=3)
        levels.append(ph.truth.noise_sd)
    np.testing.assert_allclose(levels[1], np.sqrt(2) * levels[0], rtol=1e-5)


def test_late_bolus_leaves_curves_above_baseline():
    """A late bolus: the acquisition ends while tissue curves are still well above
    baseline (more so than for the same patient with an early bolus)."""
    tails = []
    for late in (0.0, 1.0):
        cfg = PhantomConfig(
            acquisition=acquisition_preset("seed", matrix=64),
            heterogeneous=HeterogeneousSettings(late_bolus_fraction=late),
        )
        ph = simulate_patient(cfg, seed=6, noise=False)
        enh = ph.study.frames[_pure_tissue(ph)]
        enh = enh - enh[:, :1]
        tails.append(np.median(enh[:, -1] / enh.max(axis=1)))
    assert 14.0 <= ph.truth.params["input_function"]["arrival_s"] <= 22.0
    assert tails[1] > max(0.15, tails[0])


def test_normal_patient_has_no_lesion():
    cfg = PhantomConfig(acquisition=acquisition_preset("seed", matrix=64))
    ph = simulate_patient(cfg, seed=3, normal=True)
    t = ph.truth
    assert all(v == 0 for v in t.volumes_ml.values())
    assert t.params["lesion"]["side"] is None
    assert t.maps["delay"].max() <= 1.5 + 0.025

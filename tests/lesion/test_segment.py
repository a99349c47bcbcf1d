"""Core, hypoperfusion and penumbra: thresholds on small arrays, then phantom truth."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from ctpmaps.errors import InputError
from ctpmaps.evaluation import dice
from ctpmaps.lesion import (
    LesionCriteria,
    fit_midline,
    hemisphere_labels,
    median_in_brain,
    remove_small_clusters,
    segment_lesions,
)


def _toy(shape=(20, 10, 2)):
    """Right half (x < 10) and left half; CBF 50 and Tmax 0 everywhere but a right lesion."""
    cbf = np.full(shape, 50.0, np.float32)
    tmax = np.zeros(shape, np.float32)
    hemis = np.where(np.arange(shape[0])[:, None, None] < shape[0] // 2, 1, 2) * np.ones(
        shape, np.uint8
    )
    tmax[2:8, 2:8, :] = 8.0  # hypoperfused block (72 voxels)
    tmax[3:6, 3:6, :] = 12.0  # severe
    cbf[3:6, 3:6, :] = 10.0  # core: 20 % of 50
    return {"cbf": cbf, "tmax": tmax}, np.ones(shape, bool), hemis.astype(np.uint8)


def test_tmax_rule_on_a_toy():
    maps, brain, hemis = _toy()
    les = segment_lesions(maps, brain, hemis, 0.1, criteria=LesionCriteria(min_cluster_ml=0))
    assert les.rule == "tmax"
    assert les.core.sum() == 18 and les.hypoperfusion.sum() == 72
    assert les.penumbra.sum() == 72 - 18
    assert les.severe.sum() == 18
    v = les.volumes_ml()
    assert v["core"] == pytest.approx(1.8) and v["penumbra"] == pytest.approx(5.4)
    assert les.reference["reference_for_right"] == pytest.approx(50.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_thresholds_are_configurable(dtype):
    maps, brain, hemis = _toy()
    maps = {k: v.astype(dtype) for k, v in maps.items()}
    strict = LesionCriteria(core_rcbf=0.1, hypoperfusion_tmax_s=10.0, min_cluster_ml=0)
    les = segment_lesions(maps, brain, hemis, 0.1, criteria=strict)
    assert les.core.sum() == 0 and les.hypoperfusion.sum() == 18
    loose = LesionCriteria(core_within_hypoperfusion=False, core_rcbf=0.5, min_cluster_ml=0)
    maps["cbf"][15, 5, 0] = 5.0  # low flow without delay: counted only when not restricted
    les = segment_lesions(maps, brain, hemis, 0.1, criteria=loose)
    assert les.core.sum() == 19


@pytest.mark.parametrize("method", ["nlr", "bsvd", "cnn"])
def test_default_core_threshold_follows_the_method(method):
    """A voxel at 25 % of the healthy CBF is core for bSVD (calibrated 50 %), not for the
    box NLR (25 %: core below it) and the U-Net (20 %); each method's own value is used, and
    maps of unknown origin take RAPID's 30 %."""
    from ctpmaps.perfusion import METHODS, PerfusionMaps

    maps, brain, hemis = _toy()
    maps["cbf"][3:6, 3:6, :] = 12.5  # 25 % of 50
    zeros = np.zeros_like(maps["cbf"])
    pm = PerfusionMaps(
        cbf=maps["cbf"], cbv=zeros, mtt=zeros, ttp=zeros, tmax=maps["tmax"], delay=zeros,
        method=method,
    )  # fmt: skip
    crit = LesionCriteria(min_cluster_ml=0)
    les = segment_lesions(pm, brain, hemis, 0.1, criteria=crit)
    assert les.criteria.core_rcbf == METHODS[method].core_rcbf
    assert les.core.sum() == (18 if METHODS[method].core_rcbf > 0.25 else 0)
    assert segment_lesions(maps, brain, hemis, 0.1, criteria=crit).core.sum() == 18
    explicit = LesionCriteria(min_cluster_ml=0, core_rcbf=0.3)
    assert segment_lesions(pm, brain, hemis, 0.1, criteria=explicit).core.sum() == 18


def test_default_hypoperfusion_threshold_follows_the_method(monkeypatch):
    """Each method reads Tmax its own way: the registry's threshold applies to its maps,
    an explicit one overrides it, maps of unknown origin take the clinical 6 s."""
    from dataclasses import replace

    from ctpmaps.perfusion import METHODS, PerfusionMaps

    maps, brain, hemis = _toy()
    maps["tmax"][2:8, 2:8, :] = 5.0  # delayed, below 6 s
    zeros = np.zeros_like(maps["cbf"])
    pm = PerfusionMaps(cbf=maps["cbf"], cbv=zeros, mtt=zeros, ttp=zeros, tmax=maps["tmax"],
                       delay=zeros, method="bsvd")  # fmt: skip
    crit = LesionCriteria(min_cluster_ml=0)
    monkeypatch.setitem(METHODS, "bsvd", replace(METHODS["bsvd"], hypoperfusion_tmax_s=6.0))
    les = segment_lesions(pm, brain, hemis, 0.1, criteria=crit)
    assert les.criteria.hypoperfusion_tmax_s == METHODS["bsvd"].hypoperfusion_tmax_s == 6.0
    assert les.hypoperfusion.sum() == 0
    monkeypatch.setitem(METHODS, "bsvd", replace(METHODS["bsvd"], hypoperfusion_tmax_s=4.5))
    les = segment_lesions(pm, brain, hemis, 0.1, criteria=crit)
    assert les.criteria.hypoperfusion_tmax_s == 4.5 and les.hypoperfusion.sum() == 72
    explicit = LesionCriteria(min_cluster_ml=0, hypoperfusion_tmax_s=6.0)
    assert segment_lesions(pm, brain, hemis, 0.1, criteria=explicit).hypoperfusion.sum() == 0
    assert segment_lesions(maps, brain, hemis, 0.1, criteria=crit).hypoperfusion.sum() == 0
    monkeypatch.setitem(METHODS, "bsvd", replace(METHODS["bsvd"], hypoperfusion_tmax_s=12.0))
    with pytest.raises(InputError, match="severe_tmax_s"):
        segment_lesions(pm, brain, hemis, 0.1, criteria=crit)


def test_relative_cbf_is_the_rules_ratio():
    from ctpmaps.lesion import relative_cbf

    maps, brain, hemis = _toy()
    rcbf, valid, record = relative_cbf(maps, brain, hemis)
    assert valid.all() and record["reference_for_right"] == pytest.approx(50.0)
    np.testing.assert_allclose(rcbf[3:6, 3:6], 0.2)
    np.testing.assert_allclose(rcbf[10:], 1.0)


def test_small_clusters_dropped():
    mask = np.zeros((20, 20, 3), bool)
    mask[2:6, 2:6, :] = True  # 48 voxels
    mask[15, 15, 1] = True  # 1 voxel
    out = remove_small_clusters(mask, 0.01, 0.1)  # 10 voxels at least
    assert out.sum() == 48 and not out[15, 15, 1]
    assert remove_small_clusters(mask, 0.01, 0.0).sum() == 49
    maps, brain, hemis = _toy()
    maps["tmax"][15, 8, 0] = 9.0
    les = segment_lesions(maps, brain, hemis, 0.1, criteria=LesionCriteria(min_cluster_ml=0.5))
    assert les.hypoperfusion.sum() == 72


def test_nan_outside_brain_and_bad_input():
    maps, brain, hemis = _toy()
    brain[0] = False
    maps["cbf"][0] = np.nan
    maps["tmax"][0] = np.nan
    les = segment_lesions(maps, brain, hemis, 0.1)
    assert not les.hypoperfusion[0].any()
    with pytest.raises(InputError, match="expected shape"):
        segment_lesions(maps, brain[:5], hemis, 0.1)
    with pytest.raises(InputError, match="needs"):
        segment_lesions(
            {"cbf": maps["cbf"]}, brain, hemis, 0.1, criteria=LesionCriteria(rule="tmax")
        )
    with pytest.raises(InputError, match="voxel_ml"):
        segment_lesions(maps, brain, hemis, 0.0)
    with pytest.raises(InputError, match="midline"):
        segment_lesions({"cbv": maps["cbf"], "ttp": maps["tmax"]}, brain, hemis, 0.1)
    with pytest.raises(InputError, match="rule"):
        LesionCriteria(rule="rapid")
    with pytest.raises(InputError, match="core_rcbf"):
        LesionCriteria(core_rcbf=-1)
    with pytest.raises(InputError, match="severe_tmax_s"):
        LesionCriteria(severe_tmax_s=4.0, hypoperfusion_tmax_s=6.0)
    with pytest.raises(InputError, match="severe_tmax_s"):  # against the method's 6 s
        segment_lesions(maps, brain, hemis, 0.1, criteria=LesionCriteria(severe_tmax_s=4.0))


def _truth_inputs(ph):
    s, t = ph.study, ph.truth
    brain = t.masks["brain"]
    maps = {k: np.where(brain, v, np.nan).astype(np.float32) for k, v in t.maps.items()}
    midline = fit_midline(s.frames[..., :3].mean(-1), s.spacing, s.affine)
    hemis = hemisphere_labels(s.shape, s.affine, midline, mask=brain)
    voxel_ml = float(np.prod(s.spacing)) / 1000
    return maps, brain, hemis, voxel_ml, midline


def test_tmax_rule_on_true_maps(stroke_128):
    maps, brain, hemis, voxel_ml, midline = _truth_inputs(stroke_128)
    les = segment_lesions(maps, brain, hemis, voxel_ml)
    m = stroke_128.truth.masks
    assert dice(les.hypoperfusion, m["hypoperfusion"]) > 0.95
    assert dice(les.core, m["core"]) > 0.75
    assert dice(les.penumbra, m["penumbra"]) > 0.7
    assert np.array_equal(les.hypoperfusion, les.core | les.penumbra)


def test_cbv_rule_on_true_maps_without_tmax(classic_stroke_128):
    maps, brain, hemis, voxel_ml, midline = _truth_inputs(classic_stroke_128)
    del maps["tmax"]
    s = classic_stroke_128.study
    les = segment_lesions(maps, brain, hemis, voxel_ml, midline=midline, affine=s.affine)
    assert les.rule == "cbv" and les.severe is None
    m = classic_stroke_128.truth.masks
    assert dice(les.hypoperfusion, m["hypoperfusion"]) > 0.9
    assert dice(les.core, m["core"]) > 0.8
    absolute = LesionCriteria(core_cbv_ml=2.0)
    les2 = segment_lesions(
        maps, brain, hemis, voxel_ml, midline=midline, affine=s.affine, criteria=absolute
    )
    assert les2.core.sum() != les.core.sum()
    on_cbf = LesionCriteria(hypoperfusion_on="cbf")
    les3 = segment_lesions(
        maps, brain, hemis, voxel_ml, midline=midline, affine=s.affine, criteria=on_cbf
    )
    assert dice(les3.hypoperfusion, m["hypoperfusion"]) > 0.6


def test_normal_perfusion_gives_no_lesion(normal_128):
    maps, brain, hemis, voxel_ml, midline = _truth_inputs(normal_128)
    les = segment_lesions(maps, brain, hemis, voxel_ml)
    assert les.volumes_ml()["core"] == 0 and les.volumes_ml()["hypoperfusion"] == 0
    del maps["tmax"]
    s = normal_128.study
    les = segment_lesions(maps, brain, hemis, voxel_ml, midline=midline, affine=s.affine)
    assert les.volumes_ml()["hypoperfusion"] < 1.0


def _noisy_disc(spacing_mm: float, sd: float, seed: int = 0):
    """A slice pair of 0.49 mm pixels: Tmax 9 s in a disc of 10 mm radius, 1 s around it,
    with Gaussian noise of ``sd`` s per voxel; CBF 50 with 10 in the disc's centre."""
    n = 160
    yy, xx = np.mgrid[:n, :n] * spacing_mm
    r = np.hypot(xx - 0.5 * n * spacing_mm, yy - 0.5 * n * spacing_mm)
    disc = np.repeat((r < 10.0)[..., None], 2, axis=2)
    rng = np.random.default_rng(seed)
    tmax = np.where(disc, 9.0, 1.0) + rng.normal(0.0, sd, disc.shape)
    cbf = np.where(np.repeat((r < 5.0)[..., None], 2, axis=2), 10.0, 50.0)
    cbf = cbf * (1.0 + 0.3 * rng.standard_normal(disc.shape))
    brain = np.ones(disc.shape, bool)
    brain[:, : n // 8] = False  # an edge of the brain
    hemis = np.ones(disc.shape, np.uint8)
    hemis[n // 2 :] = 2
    affine = np.diag([spacing_mm, spacing_mm, 5.0, 1.0])
    maps = {"cbf": cbf.astype(np.float32), "tmax": tmax.astype(np.float32)}
    return maps, brain, hemis, affine, disc


def test_median_keeps_a_lesion_and_drops_voxel_noise():
    """At 0.49 mm pixels, 2.5 s of Tmax noise per voxel scatters the hypoperfusion: the
    3 mm median (7 x 7 pixels) recovers the disc; without the affine nothing is smoothed."""
    maps, brain, hemis, affine, disc = _noisy_disc(0.49, 2.5)
    voxel_ml = 0.49 * 0.49 * 5.0 / 1000
    crit = LesionCriteria(hypoperfusion_tmax_s=6.0, min_cluster_ml=0)
    raw = segment_lesions(maps, brain, hemis, voxel_ml, criteria=crit)
    smooth = segment_lesions(maps, brain, hemis, voxel_ml, criteria=crit, affine=affine)
    assert dice(raw.hypoperfusion, disc) < 0.9
    assert dice(smooth.hypoperfusion, disc) > 0.95
    assert "7 x 7 pixels (3.4 mm)" in smooth.reference["median"]
    assert raw.reference["median"].startswith("none")
    off = replace(crit, median_mm=0.0)
    assert (
        segment_lesions(
            maps, brain, hemis, voxel_ml, criteria=off, affine=affine
        ).hypoperfusion.sum()
        == raw.hypoperfusion.sum()
    )


def test_median_reads_only_the_brain():
    """Values outside the brain (NaN, or 0 where a map was filled) must not pull the edge:
    a hypoperfused band along the brain's edge keeps its Tmax after the median."""
    spacing = (0.5, 0.5, 5.0)
    tmax = np.full((40, 40, 1), 8.0, np.float32)
    brain = np.zeros(tmax.shape, bool)
    brain[10:, :] = True
    tmax[~brain] = 0.0
    out, width = median_in_brain(tmax, brain, spacing, 3.0)
    assert width == 7  # 3 mm at 0.5 mm: the odd width nearest 6 pixels, rounded up
    assert np.all(out[brain] == 8.0) and np.all(np.isnan(out[~brain]))
    same, width = median_in_brain(tmax, brain, (1.95, 1.95, 5.0), 3.0)
    assert width == 1 and np.array_equal(same[brain], tmax[brain])


def test_median_mm_must_not_be_negative():
    with pytest.raises(InputError, match="median_mm"):
        LesionCriteria(median_mm=-1.0)

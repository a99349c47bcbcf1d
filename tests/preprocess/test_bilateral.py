"""Guided bilateral filter: agreement with a direct sum, noise, contrast, edges, errors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ctpmaps.errors import InputError
from ctpmaps.preprocess import (
    GUIDE_WINDOW_HU,
    SEED_SIGMAS,
    SIGMA_RANGE_HU,
    SIGMA_SPATIAL_MM,
    guided_bilateral_filter,
)

HEAD_SPACING = (0.49, 0.49, 5.0)


def bilateral_filter_bruteforce(
    frames,
    spacing,
    *,
    sigma_spatial_mm=SIGMA_SPATIAL_MM,
    sigma_range_hu=SIGMA_RANGE_HU,
    guide=None,
    truncate=4.0,
    window=GUIDE_WINDOW_HU,
):
    """Direct sum over a box of +-``truncate`` sigmas per axis, in float64 (tests only).

    Voxels whose guide is outside ``window`` are neither filtered nor neighbours (the
    filter's definition); ``window=None`` filters every voxel."""
    frames = np.asarray(frames, np.float64)
    guide = frames.mean(axis=3) if guide is None else np.asarray(guide, np.float64)
    outside = np.zeros(guide.shape, bool)
    if window is not None:
        outside = (guide < window[0]) | (guide > window[1])
        guide = np.where(outside, np.nan, guide)  # NaN weights count as 0 below
    sigma = [sigma_spatial_mm / s for s in spacing]
    radius = [int(truncate * s + 0.5) for s in sigma]
    nx, ny, nz = guide.shape
    g_pad = np.pad(guide, [(r, r) for r in radius], constant_values=np.nan)
    f_pad = np.pad(frames, [(r, r) for r in radius] + [(0, 0)])
    num = np.zeros(frames.shape)
    den = np.zeros(guide.shape)
    for dx in range(-radius[0], radius[0] + 1):
        for dy in range(-radius[1], radius[1] + 1):
            for dz in range(-radius[2], radius[2] + 1):
                w_s = np.exp(
                    -0.5 * ((dx / sigma[0]) ** 2 + (dy / sigma[1]) ** 2 + (dz / sigma[2]) ** 2)
                )
                sl = (
                    slice(radius[0] + dx, radius[0] + dx + nx),
                    slice(radius[1] + dy, radius[1] + dy + ny),
                    slice(radius[2] + dz, radius[2] + dz + nz),
                )
                w = w_s * np.exp(-0.5 * ((guide - g_pad[sl]) / sigma_range_hu) ** 2)
                w = np.nan_to_num(w)  # outside the volume
                num += w[..., None] * f_pad[sl]
                den += w
    with np.errstate(invalid="ignore"):
        out = num / den[..., None]
    out[outside] = frames[outside]
    return out


def head_like(shape, spacing, n_frames, *, seed=0, noise=15.0):
    """Air, scalp, skull (diploe and cortex), CSF, grey and white matter; white noise."""
    rng = np.random.default_rng(seed)
    axes = [(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing, strict=True)]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    half = [n * s / 2 for n, s in zip(shape[:2], spacing[:2], strict=True)]
    r = np.sqrt((x / (0.9 * half[0])) ** 2 + (y / (0.8 * half[1])) ** 2)
    depth = (1 - r) * 0.8 * min(half)  # mm inside the outline, roughly
    img = np.full(shape, -1000.0)
    img[depth > 0] = 45.0
    img[depth > 1.0] = 600.0
    img[(depth > 1.0) & (depth < 1.6)] = 1400.0
    img[depth > 3.0] = 8.0
    img[depth > 3.8] = np.where(np.sin(x[depth > 3.8] / 2.0) > 0.3, 30.0, 40.0)
    img = ndimage.gaussian_filter(img, (0.7, 0.7, 0.0))  # partial volume
    frames = img[..., None] + noise * rng.standard_normal((*shape, n_frames))
    return frames.astype(np.float32), img


def two_tissue(n_frames=20, *, seed=1, correlated=False, noise=15.0):
    """40 HU and 30 HU halves with a 100 HU sphere (radius 8 mm); 0.5 x 0.5 x 5 mm voxels."""
    shape, spacing = (96, 96, 6), (0.5, 0.5, 5.0)
    axes = [(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing, strict=True)]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    truth = np.where(x < 0, 40.0, 30.0)
    sphere = (x - 4.0) ** 2 + (y - 6.0) ** 2 + z**2 < 8.0**2
    truth[sphere] = 100.0
    rng = np.random.default_rng(seed)
    white = rng.standard_normal((*shape, n_frames))
    if correlated:  # in-plane correlation of about 1 mm, like reconstructed CT noise
        white = ndimage.gaussian_filter(white, (1.0, 1.0, 0.0, 0.0))
        white /= white.std()
    frames = (truth[..., None] + noise * white).astype(np.float32)
    return frames, truth, spacing, (x, y, z), sphere


@pytest.mark.parametrize(
    "sigmas", [(SIGMA_SPATIAL_MM, SIGMA_RANGE_HU), SEED_SIGMAS], ids=["default", "seed"]
)
@pytest.mark.parametrize(
    ("shape", "spacing", "truncate"),
    [((40, 40, 4), HEAD_SPACING, 4.0), ((22, 24, 20), (0.6, 0.6, 0.6), 3.0)],
    ids=["0.49x0.49x5mm", "0.6mm-isotropic"],
)
def test_matches_bruteforce(shape, spacing, truncate, sigmas):
    frames, _ = head_like(shape, spacing, 3, seed=3)
    kw = dict(sigma_spatial_mm=sigmas[0], sigma_range_hu=sigmas[1])
    fast = guided_bilateral_filter(frames, spacing, **kw)
    slow = bilateral_filter_bruteforce(frames, spacing, truncate=truncate, **kw)
    diff = np.abs(fast - slow)
    print(
        f"\nlargest |fast - brute force| on {shape} at {spacing} mm, {sigmas[0]} mm / "
        f"{sigmas[1]} HU: {diff.max():.3f} HU"
    )
    # The bound: 1 HU is a twentieth of the range sigma and under half the noise left after
    # filtering (2-3 HU); the skull edges, where frames jump by 1,000 HU, are included.
    assert diff.max() < 1.0
    assert np.percentile(diff, 99) < 0.5


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("sigma", [0.5, 1.5, 4.5])
def test_other_spatial_sigmas_match_bruteforce(sigma):
    frames, _ = head_like((36, 34, 5), HEAD_SPACING, 2, seed=5)
    fast = guided_bilateral_filter(frames, HEAD_SPACING, sigma_spatial_mm=sigma)
    slow = bilateral_filter_bruteforce(frames, HEAD_SPACING, sigma_spatial_mm=sigma, truncate=3.0)
    assert np.abs(fast - slow).max() < 1.0


@pytest.mark.parametrize(
    "sigmas", [(SIGMA_SPATIAL_MM, SIGMA_RANGE_HU), SEED_SIGMAS], ids=["default", "seed"]
)
def test_air_and_bone_pass_through_and_change_nothing_for_tissue(sigmas):
    """Voxels outside GUIDE_WINDOW_HU keep their values; tissue voxels get what a filter over
    every voxel (air and skull included) would give them."""
    frames, _ = head_like((40, 40, 4), HEAD_SPACING, 3, seed=3)
    kw = dict(sigma_spatial_mm=sigmas[0], sigma_range_hu=sigmas[1])
    fast = guided_bilateral_filter(frames, HEAD_SPACING, **kw)
    guide = frames.mean(axis=3)
    outside = (guide < GUIDE_WINDOW_HU[0]) | (guide > GUIDE_WINDOW_HU[1])
    assert outside.mean() > 0.3  # air and skull
    np.testing.assert_array_equal(fast[outside], frames[outside])
    every = bilateral_filter_bruteforce(frames, HEAD_SPACING, window=None, **kw)
    tissue = (guide > -20) & (guide < 120)  # brain, CSF and scalp: 180 HU from the window's top
    assert tissue.sum() > 1000
    diff = np.abs(fast[tissue] - every[tissue])
    print(f"\nlargest difference on tissue from a filter over every voxel: {diff.max():.3f} HU")
    assert diff.max() < 1.0


def test_a_volume_of_air_only_comes_back_unchanged():
    rng = np.random.default_rng(0)
    frames = (-1000 + 5 * rng.standard_normal((8, 8, 2, 3))).astype(np.float32)
    np.testing.assert_array_equal(guided_bilateral_filter(frames, (1.0, 1.0, 5.0)), frames)


def test_matches_bruteforce_with_a_given_guide():
    frames, img = head_like((32, 32, 3), HEAD_SPACING, 2, seed=4)
    guide = img.astype(np.float32)
    fast = guided_bilateral_filter(frames, HEAD_SPACING, guide=guide, sigma_range_hu=30.0)
    slow = bilateral_filter_bruteforce(frames, HEAD_SPACING, guide=guide, sigma_range_hu=30.0)
    assert np.abs(fast - slow).max() < 1.0


@pytest.mark.parametrize("correlated", [False, True], ids=["white", "correlated"])
def test_noise_falls_and_contrast_stays(correlated):
    frames, truth, spacing, (x, y, z), sphere = two_tissue(correlated=correlated)
    out = guided_bilateral_filter(frames, spacing)
    dist_sphere = np.sqrt((x - 4.0) ** 2 + (y - 6.0) ** 2 + z**2)
    interior = (np.abs(x) > 10.0) & (dist_sphere > 18.0)  # 3 sigmas from every edge
    left, right = interior & (x < 0), interior & (x > 0)
    noise_in = np.mean([frames[left][:, t].std() for t in range(frames.shape[3])])
    noise_out = np.mean([out[left][:, t].std() for t in range(out.shape[3])])
    contrast_in = truth[left].mean() - truth[right].mean()
    contrast_out = out[left].mean() - out[right].mean()
    print(
        f"\n{'correlated' if correlated else 'white'} noise: sigma {noise_in:.1f} -> "
        f"{noise_out:.1f} HU ({noise_in / noise_out:.1f}-fold), contrast "
        f"{contrast_in:.1f} -> {contrast_out:.1f} HU ({100 * contrast_out / contrast_in:.0f} %)"
    )
    assert noise_in / noise_out >= 3.0
    assert contrast_out >= 0.9 * contrast_in


def test_edges_are_preserved():
    frames, truth, spacing, (x, y, z), sphere = two_tissue()
    out = guided_bilateral_filter(frames, spacing).mean(axis=3)
    blurred = ndimage.gaussian_filter(frames.mean(axis=3), [3.0 / s for s in spacing])
    d = np.sqrt((x - 4.0) ** 2 + (y - 6.0) ** 2 + z**2) - 8.0  # mm outside the sphere
    inside, outside = (
        (d > -1.5) & (d < -0.5) & (np.abs(z) < 3),
        (d > 0.5) & (d < 1.5) & (np.abs(z) < 3),
    )
    step_truth = truth[inside].mean() - truth[outside].mean()
    step_bilateral = out[inside].mean() - out[outside].mean()
    step_gauss = blurred[inside].mean() - blurred[outside].mean()
    print(
        f"\nstep 1 mm either side of the sphere: truth {step_truth:.1f}, bilateral "
        f"{step_bilateral:.1f}, Gaussian {step_gauss:.1f} HU"
    )
    assert step_bilateral > 0.85 * step_truth
    assert step_gauss < 0.6 * step_truth  # the same spatial kernel without range weights


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
def test_dtype(dtype):
    frames, _ = head_like((24, 20, 3), HEAD_SPACING, 4)
    out = guided_bilateral_filter(frames.astype(dtype), HEAD_SPACING)
    assert out.dtype == (np.float64 if dtype == np.float64 else np.float32)
    assert out.shape == frames.shape


@pytest.mark.parametrize("shape", [(17, 9, 1, 2), (5, 6, 7, 1), (30, 31, 2, 3)])
def test_constant_stays_constant(shape):
    frames = np.full(shape, 37.5, np.float32)
    out = guided_bilateral_filter(frames, (0.7, 0.6, 3.0))
    np.testing.assert_allclose(out, 37.5, rtol=1e-5)


def test_in_place_and_threads_agree():
    frames, _ = head_like((32, 30, 3), HEAD_SPACING, 19)
    ref = guided_bilateral_filter(frames, HEAD_SPACING, threads=1)
    two = guided_bilateral_filter(frames, HEAD_SPACING, threads=2)
    inplace = frames.copy()
    res = guided_bilateral_filter(inplace, HEAD_SPACING, out=inplace)
    assert res is inplace
    np.testing.assert_array_equal(ref, two)
    np.testing.assert_array_equal(ref, inplace)


@pytest.mark.parametrize(
    ("kwargs", "source"),
    [
        ({"frames": np.zeros((4, 4, 4))}, "frames"),
        ({"frames": np.zeros((4, 4, 4, 2, 1))}, "frames"),
        ({"spacing": (1.0, 1.0)}, "spacing"),
        ({"spacing": (1.0, 0.0, 1.0)}, "spacing"),
        ({"sigma_spatial_mm": 0.0}, "sigma_spatial_mm"),
        ({"sigma_range_hu": -5.0}, "sigma_range_hu"),
        ({"sigma_range_hu": float("nan")}, "sigma_range_hu"),
        ({"guide": np.zeros((4, 4, 3))}, "guide"),
        ({"guide": np.full((4, 4, 2), np.nan)}, "guide"),
        ({"threads": 0}, "threads"),
        ({"out": np.zeros((4, 4, 2, 3), np.float32)}, "out"),
        ({"out": np.zeros((4, 4, 2, 2), np.int16)}, "out"),
    ],
)
def test_bad_arguments(kwargs, source):
    args = {"frames": np.zeros((4, 4, 2, 2), np.float32), "spacing": (1.0, 1.0, 5.0), **kwargs}
    frames, spacing = args.pop("frames"), args.pop("spacing")
    with pytest.raises(InputError) as err:
        guided_bilateral_filter(frames, spacing, **args)
    assert err.value.source.startswith(source)


def test_phantom_noise_falls_and_grey_white_contrast_stays():
    """Issue 4's bar on a phantom stroke patient (matrix 128, default dose): with the default
    settings the noise in homogeneous white matter falls at least 3-fold and the grey/white
    contrast of the unenhanced frames keeps at least 90 % (GM and WM fractions > 0.9, cortex
    included); the seed's 3 mm / 20 HU keeps much less, which is why it is not the default
    (``docs/filter.md`` gives the 512 x 512 figures)."""
    from ctpmaps.phantom import PhantomConfig, acquisition_preset, simulate_patient

    cfg = PhantomConfig(acquisition=acquisition_preset("seed", matrix=128))
    ph = simulate_patient(cfg, seed=2000, normal=False, keep_noise_free=True)
    noisy, clean, fr = ph.study.frames, ph.truth.noise_free, ph.truth.fractions
    brain = ph.truth.masks["brain"]
    gm, wm, homogeneous = (fr.gm > 0.9) & brain, (fr.wm > 0.9) & brain, (fr.wm > 0.95) & brain
    unenhanced = ph.study.times < ph.truth.params["input_function"]["arrival_s"]
    assert unenhanced.sum() >= 2
    contrast = lambda img: img[gm].mean() - img[wm].mean()  # noqa: E731
    c0 = contrast(clean[..., unenhanced].mean(-1))
    assert 5.0 < c0 < 12.0  # grey/white contrast of unenhanced CT, HU
    kept, fold = {}, {}
    for name, sigmas in (("default", (SIGMA_SPATIAL_MM, SIGMA_RANGE_HU)), ("seed", SEED_SIGMAS)):
        kw = dict(sigma_spatial_mm=sigmas[0], sigma_range_hu=sigmas[1], guide=noisy.mean(-1))
        out = guided_bilateral_filter(noisy, ph.study.spacing, **kw)
        out_clean = guided_bilateral_filter(clean, ph.study.spacing, **kw)  # same weights
        fold[name] = (noisy - clean)[homogeneous].std() / (out - out_clean)[homogeneous].std()
        kept[name] = contrast(out[..., unenhanced].mean(-1)) / c0
        print(
            f"\n{name} {sigmas}: noise {fold[name]:.1f}-fold lower, contrast kept {kept[name]:.0%}"
        )
    assert fold["default"] >= 3.0 and kept["default"] >= 0.90
    assert kept["seed"] < 0.75


def test_shorter_range_splat_stays_close_to_three_sigmas(monkeypatch):
    """The splat reaches 2.5 range sigmas (for speed); against the 3 sigmas it had, the
    output moves by well under the noise left after filtering."""
    import ctpmaps.preprocess.bilateral as bilateral

    frames, _ = head_like((48, 44, 5), HEAD_SPACING, 4, seed=11)
    short = guided_bilateral_filter(frames, HEAD_SPACING)
    monkeypatch.setattr(bilateral, "_RANGE_RADIUS", 3.0)
    wide = guided_bilateral_filter(frames, HEAD_SPACING)
    diff = np.abs(short - wide)
    assert diff.max() < 1.0
    assert np.percentile(diff, 99) < 0.2

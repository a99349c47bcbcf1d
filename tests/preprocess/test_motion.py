"""Rigid motion correction: recovery of known motions, still studies, report, errors.

The moved frames are acquired, not resampled: each 5 mm slice averages the moved anatomy of
an analytic head over its thickness, so the truth does not share the registrations' model
(linear interpolation between slice centres).
"""

from __future__ import annotations

import csv

import numpy as np
import pytest
from scipy import ndimage

from ctpmaps.errors import InputError
from ctpmaps.io.motion import CSV_COLUMNS, motion_table, write_motion_csv
from ctpmaps.preprocess import (
    MotionResult,
    register_frames,
    resample_rigid,
    rigid_matrix,
)
from ctpmaps.preprocess.motion import METHODS
from ctpmaps.preprocess.motion.geometry import params_of_matrix
from ctpmaps.report.figures import motion_figure, write_png

SHAPE = (64, 64, 8)
SPACING = (1.5, 1.5, 5.0)
CENTER = (np.array(SHAPE) - 1) / 2 * np.array(SPACING)
# (rx, ry, rz) degrees, (tx, ty, tz) mm; frame 0 is the reference.
MOTIONS = [
    ((0, 0, 0), (0, 0, 0)),
    ((0, 0, 2), (1.0, -2.0, 0.5)),
    ((1, -1, 0), (-3.0, 1.5, 0.0)),
    ((3, 0, 0), (0.5, 0.5, -1.5)),
    ((0, 2, -2), (2.0, 2.0, 1.0)),
    ((-2, -3, 1), (-1.0, 3.0, -2.0)),
    ((-2, -3, 1), (-1.0, 3.0, -2.0)),  # the head stayed where it moved: shares frame 5's
]


def _step(d, width=1.5):
    return 0.5 * (1 + np.tanh(d / width))


def _depth(x, y, z):
    return (1 - np.sqrt((x / 40) ** 2 + ((y - 3) / 46) ** 2 + ((z - 10) / 70) ** 2)) * 42


def _head(p, enhancement_hu=0.0):
    """Head-like HU at points ``p`` (mm from the volume centre): scalp, skull, brain, CSF;
    ``enhancement_hu`` added to the brain and ten times that in an artery."""
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    depth = _depth(x, y, z)
    v = -1000 + 1040 * _step(depth) + 960 * _step(depth - 3) - 965 * _step(depth - 8)
    v = v + (15 * np.sin(x / 4 + 0.3 * np.sin(y / 9)) * np.sin(y / 5) + enhancement_hu) * _step(
        depth - 10
    )
    for cx in (-7, 7):
        r = np.sqrt(((x - cx) / 4) ** 2 + ((y + 4) / 14) ** 2 + ((z - 2) / 40) ** 2)
        v = v - 30 * _step((1 - r) * 4)
    artery = np.sqrt((x - 12) ** 2 + (y - 20) ** 2)
    return v + 10 * enhancement_hu * _step((2.0 - artery) * 2)


def acquire(rotation, translation, *, shape=SHAPE, spacing=SPACING, enhancement_hu=0.0):
    """A frame of the head moved by (rotation, translation): each 5 mm slice averages the
    moved anatomy over its thickness (3 sub-slices), as a scanner would."""
    center = (np.array(shape) - 1) / 2 * np.array(spacing)
    inverse = np.linalg.inv(rigid_matrix(rotation, translation, center))
    index = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    total = 0.0
    for u in (-1 / 3, 0.0, 1 / 3):
        pos = index * np.array(spacing) + np.array([0.0, 0.0, u * spacing[2]])
        total = total + _head(pos @ inverse[:3, :3].T + inverse[:3, 3] - center, enhancement_hu)
    return total / 3


def random_walk(n, rng, *, mm=2.0, deg=2.0):
    """(n, 6) rotations (deg) and translations (mm): a smooth random walk from 0, each
    parameter reaching a random 50-100 % of ``deg`` or ``mm``."""
    walk = ndimage.gaussian_filter1d(np.cumsum(rng.standard_normal((n, 6)), axis=0), 2.0, axis=0)
    walk -= walk[0]
    limit = np.r_[[deg] * 3, [mm] * 3] * rng.uniform(0.5, 1.0, 6)
    return walk / np.abs(walk).max(axis=0) * limit


def residual_mm(result, truth, points_mm):
    """Distance (mm) between where the found and the true transforms put each point, over
    all frames: shape (t * n,)."""
    homogeneous = np.c_[points_mm, np.ones(len(points_mm))]
    true = np.stack([rigid_matrix(p[:3], p[3:], result.center_mm) for p in truth])
    diff = np.einsum("tij,nj->tni", result.matrices - true, homogeneous)[..., :3]
    return np.linalg.norm(diff, axis=-1).ravel()


def noisy(frames, seed=0, sigma=10.0):
    rng = np.random.default_rng(seed)
    return (frames + rng.normal(0.0, sigma, frames.shape)).astype(np.float32)


def _moved_frames():
    return noisy(np.stack([acquire(*m) for m in MOTIONS], axis=-1))


@pytest.fixture(scope="module")
def moved():
    """The motions above, registered by the default method."""
    frames = _moved_frames()
    times = np.arange(len(MOTIONS)) * 2.0
    return frames, register_frames(frames, SPACING, times=times)


@pytest.fixture(scope="module")
def moved_elastix():
    """The same, by the seed's elastix settings."""
    frames = _moved_frames()
    times = np.arange(len(MOTIONS)) * 2.0
    return frames, register_frames(frames, SPACING, times=times, method="elastix-seed")


@pytest.mark.parametrize(
    ("fixture", "limit_mm", "limit_deg"), [("moved", 0.05, 0.1), ("moved_elastix", 0.3, 0.3)]
)
def test_known_motions_are_recovered(request, fixture, limit_mm, limit_deg):
    frames, result = request.getfixturevalue(fixture)
    rot = np.array([m[0] for m in MOTIONS], float)
    trans = np.array([m[1] for m in MOTIONS], float)
    rms_t = np.sqrt(np.mean((result.translations_mm - trans) ** 2))
    rms_r = np.sqrt(np.mean((result.rotations_deg - rot) ** 2))
    print(
        f"\n{result.parameters['method']}: recovered {len(MOTIONS) - 1} motions (up to 3 mm, "
        f"3 deg): RMS error {rms_t:.3f} mm, {rms_r:.3f} deg; largest "
        f"{np.abs(result.translations_mm - trans).max():.3f} mm, "
        f"{np.abs(result.rotations_deg - rot).max():.3f} deg"
    )
    assert rms_t < limit_mm
    assert rms_r < limit_deg
    assert result.frames.dtype == np.float32 and result.frames.shape == frames.shape


@pytest.fixture(scope="module")
def walk_study():
    """128 x 128 x 8 x 24 frames at 1.5 x 1.5 x 5 mm, every frame moved (random walk up to
    2 mm / 2 deg), with contrast arriving (brain up to +25 HU, an artery up to +250 HU)."""
    shape = (128, 128, 8)
    rng = np.random.default_rng(3)
    truth = random_walk(24, rng)
    enhancement = 25 * np.exp(-(((np.arange(24) - 12) / 4) ** 2))
    frames = np.stack(
        [
            acquire(p[:3], p[3:], shape=shape, enhancement_hu=e)
            for p, e in zip(truth, enhancement, strict=True)
        ],
        axis=-1,
    )
    index = np.argwhere(np.ones(shape, bool)) * np.array(SPACING)
    center = (np.array(shape) - 1) / 2 * np.array(SPACING)
    brain = index[_depth(*(index - center).T) > 10]
    return noisy(frames, seed=1), truth, brain


def test_random_walk_on_every_frame(walk_study):
    frames, truth, brain = walk_study
    result = register_frames(frames, SPACING)
    distance = residual_mm(result, truth, brain)
    median, p95 = np.median(distance), np.percentile(distance, 95)
    before = residual_mm(result, np.zeros_like(truth), brain)
    print(
        f"\nrandom walk, 23 moved frames: residual brain displacement median {median:.3f} mm, "
        f"p95 {p95:.3f} mm (uncorrected: {np.median(before):.2f} / "
        f"{np.percentile(before, 95):.2f} mm)"
    )
    assert result.registered.sum() >= 20  # frames screened still keep the identity
    assert median <= 0.2 and p95 <= 0.4
    assert np.median(before) > 1.0  # the motion was there to correct


def test_edge_slices_help_through_plane_motion(walk_study):
    frames, truth, brain = walk_study
    p95 = {
        edge: np.percentile(
            residual_mm(register_frames(frames, SPACING, edge_slices=edge), truth, brain), 95
        )
        for edge in (0, 1)
    }
    print(f"\np95 residual with edge_slices 0 / 1: {p95[0]:.3f} / {p95[1]:.3f} mm")
    assert p95[1] < p95[0]


def test_threads_do_not_change_the_result(walk_study):
    frames, _, _ = walk_study
    one, two = (register_frames(frames[..., :6], SPACING, threads=n) for n in (1, 2))
    # the same fit per frame; only float32 sums in another order
    np.testing.assert_allclose(one.matrices, two.matrices, atol=1e-4)
    np.testing.assert_allclose(one.frames, two.frames, atol=0.05)


def test_registered_frames_match_the_reference(moved):
    frames, result = moved
    inner = (slice(4, -4), slice(4, -4), slice(1, -1))
    before = [np.abs(frames[..., k] - frames[..., 0])[inner].mean() for k in range(1, 7)]
    after = [np.abs(result.frames[..., k] - frames[..., 0])[inner].mean() for k in range(1, 7)]
    assert max(after) < 0.5 * min(before)
    np.testing.assert_array_equal(result.frames[..., 0], frames[..., 0])


def test_flags_follow_the_thresholds(moved):
    _, result = moved
    assert result.flagged.tolist() == [False] + [True] * 6  # every motion exceeds 1 mm/deg
    assert result.summary()["flagged_frames"] == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("method", METHODS)
def test_still_study_is_measured_and_skipped(method):
    still = np.stack([acquire((0, 0, 0), (0, 0, 0))] * 6, axis=-1)
    vessel = np.zeros(SHAPE)
    vessel[30:33, 20:23, :] = 1.0  # an artery enhancing by up to 300 HU
    curve = np.array([0, 0, 150, 300, 200, 100])
    frames = noisy(still + vessel[..., None] * curve, seed=2)
    result = register_frames(frames, SPACING, method=method)
    print(f"\nstill study: screened displacements {np.round(result.screen_mm, 3).tolist()} mm")
    assert not result.registered.any()
    assert (result.source == -1).all()
    assert np.all(result.translations_mm == 0) and np.all(result.rotations_deg == 0)
    assert np.all(result.screen_mm < 0.1)
    np.testing.assert_array_equal(result.frames, frames)
    assert "register" not in result.timings and "itk_load" not in result.timings


def _report(result, folder):
    """The motion report as the pipeline writes it."""
    folder.mkdir(parents=True, exist_ok=True)
    png = write_png(folder / "motion.png", motion_figure(result))
    return {"csv": write_motion_csv(result, folder), "png": png}


def test_report_without_times(tmp_path):
    frames = noisy(np.stack([acquire((0, 0, 0), (0, 0, 0))] * 3, axis=-1), seed=4)
    paths = _report(register_frames(frames, SPACING), tmp_path)
    with open(paths["csv"], newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["time_s"] for r in rows] == ["", "", ""]
    assert [r["transform"] for r in rows] == ["reference", "still", "still"]
    assert paths["png"].stat().st_size > 10_000
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries


def test_default_registers_every_moved_frame(moved):
    _, result = moved
    assert result.registered.tolist() == [False] + [True] * 6
    assert result.source.tolist() == [-1, 1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose(result.translations_mm[6], result.translations_mm[5], atol=0.05)
    assert result.parameters["method"] == "gauss-newton"


def test_elastix_registers_a_head_that_stays_where_it_moved_once(moved_elastix):
    _, result = moved_elastix
    assert result.registered.tolist() == [False] + [True] * 5 + [False]
    assert result.source.tolist() == [-1, 1, 2, 3, 4, 5, 5]
    np.testing.assert_array_equal(result.translations_mm[6], result.translations_mm[5])
    np.testing.assert_array_equal(result.rotations_deg[6], result.rotations_deg[5])
    assert result.summary()["n_shared"] == 1


@pytest.mark.parametrize(
    ("fixture", "labels"),
    [
        ("moved", ["reference"] + ["gauss-newton"] * 6),
        ("moved_elastix", ["reference"] + ["elastix"] * 5 + ["as frame 5"]),
    ],
)
def test_report_files(request, fixture, labels, tmp_path):
    _, result = request.getfixturevalue(fixture)
    paths = _report(result, tmp_path / "report")
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == ["motion.csv", "motion.png"]
    with open(paths["csv"], newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == len(MOTIONS)
    assert [r["transform"] for r in rows] == labels
    np.testing.assert_allclose(float(rows[3]["rx_deg"]), result.rotations_deg[3, 0], atol=1e-4)
    np.testing.assert_allclose(float(rows[5]["time_s"]), 10.0)
    assert [int(r["flagged"]) for r in rows] == result.flagged.astype(int).tolist()
    import matplotlib.image

    image = matplotlib.image.imread(paths["png"])
    assert image.ndim == 3 and image.shape[0] > 300


def test_table_and_figure_without_files(moved):
    _, result = moved
    rows = motion_table(result)
    assert len(rows) == len(MOTIONS) and all(len(r) == len(CSV_COLUMNS) for r in rows)
    assert rows[2][CSV_COLUMNS.index("tx_mm")] == f"{result.translations_mm[2, 0]:.4f}"
    png = motion_figure(result)
    assert png[:4] == b"\x89PNG" and len(png) > 10_000


def test_rigid_matrix_convention():
    m = rigid_matrix((90, 0, 0), (1, 2, 3), (0, 0, 0))
    np.testing.assert_allclose(m[:3, :3] @ [0, 1, 0], [0, 0, 1], atol=1e-12)  # y -> z
    np.testing.assert_allclose(m[:3, 3], [1, 2, 3])
    m = rigid_matrix((0, 0, 30), (0, 0, 0), (10, 10, 0))
    np.testing.assert_allclose(m @ [10, 10, 0, 1], [10, 10, 0, 1], atol=1e-12)  # centre fixed
    zyx = rigid_matrix((10, 20, 30), (0, 0, 0), (0, 0, 0))[:3, :3]
    rx, ry, rz = (
        rigid_matrix(a, (0, 0, 0), (0, 0, 0))[:3, :3] for a in ((10, 0, 0), (0, 20, 0), (0, 0, 30))
    )
    np.testing.assert_allclose(zyx, rz @ ry @ rx, atol=1e-12)
    params = (1.5, -2.0, 0.5, 3.0, -1.0, 2.0)
    m = rigid_matrix(params[:3], params[3:], (10, 20, 30))
    np.testing.assert_allclose(params_of_matrix(m, (10, 20, 30)), params, atol=1e-12)


def test_resample_rigid_moves_content():
    vol = np.zeros((20, 20, 6), np.float32)
    vol[8:12, 8:12, 2:4] = 100.0
    moved = resample_rigid(
        vol, (1.0, 1.0, 5.0), rigid_matrix((0, 0, 0), (-2.0, 0.0, 0.0), (0, 0, 0))
    )
    np.testing.assert_allclose(moved[10:14, 8:12, 2:4], 100.0)  # read 2 mm back: moved +2 mm
    filled = resample_rigid(
        vol, (1.0, 1.0, 5.0), rigid_matrix((0, 0, 0), (0, 0, 30.0), (0, 0, 0)), fill_hu=-1000.0
    )
    assert np.all(filled[..., -1] == -1000.0)


def test_in_place_output():
    frames = noisy(np.stack([acquire((0, 0, 0), (0, 0, 0))] * 3, axis=-1), seed=5)
    expected = frames.copy()
    result = register_frames(frames, SPACING, out=frames)
    assert result.frames is frames
    np.testing.assert_array_equal(frames, expected)


@pytest.mark.parametrize(
    ("kwargs", "source"),
    [
        ({"frames": np.zeros((8, 8, 4))}, "frames"),
        ({"frames": np.zeros((8, 8, 1, 3))}, "frames"),
        ({"frames": np.full((8, 8, 4, 3), np.nan)}, "frames"),
        ({"spacing": (1.0, 1.0)}, "spacing"),
        ({"spacing": (1.0, -1.0, 5.0)}, "spacing"),
        ({"reference": 3}, "reference"),
        ({"skip_threshold_mm": -1.0}, "skip_threshold_mm"),
        ({"flag_deg": float("nan")}, "flag_deg"),
        ({"edge_slices": -1}, "edge_slices"),
        ({"times": np.zeros(2)}, "times"),
        ({"threads": 0}, "threads"),
        ({"out": np.zeros((8, 8, 4, 3), np.float64)}, "out"),
        ({"method": "affine"}, "method"),
        ({"levels": 2}, "levels"),
        ({"iterations": 100}, "iterations"),
        ({"device": "tpu9"}, "device"),
        ({"seed": 1.5}, "seed"),
        ({"method": "elastix-seed", "levels": 0}, "levels"),
        ({"method": "elastix-seed", "shrink": (8,)}, "shrink"),
        ({"method": "elastix-seed", "samples": (2000, 0)}, "samples"),
        ({"method": "elastix-seed", "iterations": (300,)}, "iterations"),
        ({"method": "elastix-seed", "device": "cpu"}, "device"),
    ],
)
def test_bad_arguments(kwargs, source):
    args = {"frames": np.zeros((8, 8, 4, 3), np.float32), "spacing": (1.0, 1.0, 5.0), **kwargs}
    frames, spacing = args.pop("frames"), args.pop("spacing")
    with pytest.raises(InputError) as err:
        register_frames(frames, spacing, **args)
    assert err.value.source == source


def test_result_matrices_and_summary(moved_elastix):
    _, result = moved_elastix
    assert isinstance(result, MotionResult)
    mats = result.matrices
    assert mats.shape == (len(MOTIONS), 4, 4)
    np.testing.assert_allclose(mats[0], np.eye(4))
    summary = result.summary()
    assert summary["n_registered"] == 5
    assert summary["parameters"]["method"] == "elastix-seed"
    assert summary["parameters"]["elastix"]["ComputeZYX"] == ["true"]
    assert summary["parameters"]["elastix"]["NumberOfSpatialSamples"] == ["2000", "8000"]
    assert (
        summary["parameters"]["elastix"]["FixedImagePyramidSchedule"] == ["8", "8", "2"] + ["1"] * 3
    )


def test_world_matrices_follow_the_affine(moved):
    _, result = moved
    affine = np.array([[-1.5, 0, 0, 47.0], [0, -1.5, 0, 40.0], [0, 0, 5.0, -17.5], [0, 0, 0, 1]])
    index = np.array([10.0, 50.0, 6.0, 1.0])
    for k in (1, 4):
        moved_mm = result.matrices[k] @ np.r_[index[:3] * SPACING, 1.0]  # array mm
        expected = affine @ np.r_[moved_mm[:3] / SPACING, 1.0]
        np.testing.assert_allclose(result.world_matrices(affine)[k] @ affine @ index, expected)

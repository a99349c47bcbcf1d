"""Rigid motion correction: recovery of known motions, still studies, report, errors."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from ctpmaps.errors import InputError
from ctpmaps.preprocess import (
    MotionResult,
    motion_report,
    register_frames,
    resample_rigid,
    rigid_matrix,
)
from ctpmaps.preprocess.motion_report import CSV_COLUMNS

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


def _head(p):
    """Head-like HU at points ``p`` (mm from the volume centre): scalp, skull, brain, CSF."""
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    depth = (1 - np.sqrt((x / 40) ** 2 + ((y - 3) / 46) ** 2 + ((z - 10) / 70) ** 2)) * 42
    v = -1000 + 1040 * _step(depth) + 960 * _step(depth - 3) - 965 * _step(depth - 8)
    v = v + 15 * np.sin(x / 4 + 0.3 * np.sin(y / 9)) * np.sin(y / 5) * _step(depth - 10)
    for cx in (-7, 7):
        r = np.sqrt(((x - cx) / 4) ** 2 + ((y + 4) / 14) ** 2 + ((z - 2) / 40) ** 2)
        v = v - 30 * _step((1 - r) * 4)
    return v


def acquire(rotation, translation, *, extra=None):
    """A frame of the head moved by (rotation, translation): each 5 mm slice averages the
    moved anatomy over its thickness (3 sub-slices), as a scanner would."""
    inverse = np.linalg.inv(rigid_matrix(rotation, translation, CENTER))
    index = np.stack(np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij"), -1)
    total = 0.0
    for u in (-1 / 3, 0.0, 1 / 3):
        pos = index * np.array(SPACING) + np.array([0.0, 0.0, u * SPACING[2]])
        total = total + _head(pos @ inverse[:3, :3].T + inverse[:3, 3] - CENTER)
    frame = total / 3
    return frame if extra is None else frame + extra


def noisy(frames, seed=0, sigma=10.0):
    rng = np.random.default_rng(seed)
    return (frames + rng.normal(0.0, sigma, frames.shape)).astype(np.float32)


@pytest.fixture(scope="module")
def moved():
    frames = noisy(np.stack([acquire(*m) for m in MOTIONS], axis=-1))
    times = np.arange(len(MOTIONS)) * 2.0
    return frames, register_frames(frames, SPACING, times=times)


def test_known_motions_are_recovered(moved):
    frames, result = moved
    rot = np.array([m[0] for m in MOTIONS], float)
    trans = np.array([m[1] for m in MOTIONS], float)
    rms_t = np.sqrt(np.mean((result.translations_mm - trans) ** 2))
    rms_r = np.sqrt(np.mean((result.rotations_deg - rot) ** 2))
    print(
        f"\nrecovered {len(MOTIONS) - 1} motions (up to 3 mm, 3 deg): RMS error "
        f"{rms_t:.3f} mm, {rms_r:.3f} deg; largest "
        f"{np.abs(result.translations_mm - trans).max():.3f} mm, "
        f"{np.abs(result.rotations_deg - rot).max():.3f} deg"
    )
    assert rms_t < 0.3
    assert rms_r < 0.3
    assert result.registered.tolist() == [False] + [True] * 5 + [False]
    assert result.frames.dtype == np.float32 and result.frames.shape == frames.shape


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


def test_still_study_is_measured_and_skipped():
    still = np.stack([acquire((0, 0, 0), (0, 0, 0))] * 6, axis=-1)
    vessel = np.zeros(SHAPE)
    vessel[30:33, 20:23, :] = 1.0  # an artery enhancing by up to 300 HU
    curve = np.array([0, 0, 150, 300, 200, 100])
    frames = noisy(still + vessel[..., None] * curve, seed=2)
    result = register_frames(frames, SPACING)
    print(f"\nstill study: screened displacements {np.round(result.screen_mm, 3).tolist()} mm")
    assert not result.registered.any()
    assert (result.source == -1).all()
    assert np.all(result.translations_mm == 0) and np.all(result.rotations_deg == 0)
    assert np.all(result.screen_mm < 0.1)
    np.testing.assert_array_equal(result.frames, frames)
    assert "itk_load" not in result.timings  # elastix was never needed


def test_report_without_times(tmp_path):
    frames = noisy(np.stack([acquire((0, 0, 0), (0, 0, 0))] * 3, axis=-1), seed=4)
    paths = motion_report(register_frames(frames, SPACING), tmp_path)
    with open(paths["csv"], newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["time_s"] for r in rows] == ["", "", ""]
    assert [r["transform"] for r in rows] == ["reference", "still", "still"]
    assert paths["png"].stat().st_size > 10_000
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries


def test_a_head_that_stays_where_it_moved_is_registered_once(moved):
    _, result = moved
    assert result.source.tolist() == [-1, 1, 2, 3, 4, 5, 5]
    np.testing.assert_array_equal(result.translations_mm[6], result.translations_mm[5])
    np.testing.assert_array_equal(result.rotations_deg[6], result.rotations_deg[5])
    assert result.summary()["n_shared"] == 1


def test_report_files(moved, tmp_path):
    _, result = moved
    paths = motion_report(result, tmp_path / "report")
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == ["motion.csv", "motion.png"]
    with open(paths["csv"], newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == len(MOTIONS)
    assert [r["transform"] for r in rows] == ["reference"] + ["elastix"] * 5 + ["as frame 5"]
    np.testing.assert_allclose(float(rows[3]["rx_deg"]), result.rotations_deg[3, 0], atol=1e-4)
    np.testing.assert_allclose(float(rows[5]["time_s"]), 10.0)
    assert [int(r["flagged"]) for r in rows] == result.flagged.astype(int).tolist()
    import matplotlib.image

    image = matplotlib.image.imread(paths["png"])
    assert image.ndim == 3 and image.shape[0] > 300


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
        ({"levels": 0}, "levels"),
        ({"shrink": (8,)}, "shrink"),
        ({"samples": (2000, 0)}, "samples"),
        ({"iterations": (300,)}, "iterations"),
        ({"skip_threshold_mm": -1.0}, "skip_threshold_mm"),
        ({"flag_deg": float("nan")}, "flag_deg"),
        ({"edge_slices": -1}, "edge_slices"),
        ({"times": np.zeros(2)}, "times"),
        ({"threads": 0}, "threads"),
        ({"out": np.zeros((8, 8, 4, 3), np.float64)}, "out"),
    ],
)
def test_bad_arguments(kwargs, source):
    args = {"frames": np.zeros((8, 8, 4, 3), np.float32), "spacing": (1.0, 1.0, 5.0), **kwargs}
    frames, spacing = args.pop("frames"), args.pop("spacing")
    with pytest.raises(InputError) as err:
        register_frames(frames, spacing, **args)
    assert err.value.source == source


def test_result_matrices_and_summary(moved):
    _, result = moved
    assert isinstance(result, MotionResult)
    mats = result.matrices
    assert mats.shape == (len(MOTIONS), 4, 4)
    np.testing.assert_allclose(mats[0], np.eye(4))
    summary = result.summary()
    assert summary["n_registered"] == 5
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

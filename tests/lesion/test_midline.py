"""Mid-sagittal plane from symmetry, against the phantom's known head pose."""

from __future__ import annotations

import numpy as np
import pytest

from ctpmaps.errors import InputError
from ctpmaps.lesion import fit_midline, hemisphere_labels
from ctpmaps.phantom import PhantomConfig, acquisition_preset, simulate_patient
from ctpmaps.phantom.anatomy import euler_matrix


def _true_plane(ph):
    """The template's x = 0 plane placed by the pose: unit normal (towards +x) and offset."""
    pose = ph.truth.params["pose"]
    n = euler_matrix(*pose["angles_deg"]) @ (np.array([1.0, 0.0, 0.0]) / np.asarray(pose["scale"]))
    n /= np.linalg.norm(n)
    return n, float(n @ np.asarray(pose["shift_mm"]))


def _errors(ph, midline):
    s = ph.study
    n, d = _true_plane(ph)
    angle = np.degrees(np.arccos(min(1.0, abs(float(n @ midline.normal)))))
    centre = s.affine[:3, :3] @ ((np.array(s.shape) - 1) / 2) + s.affine[:3, 3]
    on_plane = centre - (n @ centre - d) * n
    return angle, abs(float(midline.normal @ on_plane - midline.offset_mm))


@pytest.mark.parametrize("seed", [0, 1, 4])
def test_midline_matches_pose(seed):
    cfg = PhantomConfig(acquisition=acquisition_preset("seed", matrix=64))
    ph = simulate_patient(cfg, seed=seed, normal=True)
    s = ph.study
    midline = fit_midline(s.frames[..., :3].mean(-1), s.spacing, s.affine)
    angle, dist = _errors(ph, midline)
    yaw = ph.truth.params["pose"]["angles_deg"][2]
    assert angle < 3.0, (angle, yaw)
    assert dist < 1.5
    assert midline.normal[0] > 0  # towards the patient's right
    assert abs(midline.angle_deg - yaw) < 1.5  # the in-plane angle is the head's yaw
    assert midline.score > 0.9


def test_hemispheres_follow_the_lesion_side(stroke_128):
    ph = stroke_128
    s = ph.study
    midline = fit_midline(s.frames[..., :3].mean(-1), s.spacing, s.affine)
    angle, dist = _errors(ph, midline)
    assert angle < 3.0 and dist < 1.5
    brain = ph.truth.masks["brain"]
    labels = hemisphere_labels(s.shape, s.affine, midline, mask=brain)
    assert set(np.unique(labels)) == {0, 1, 2}
    assert not labels[~brain].any()
    side = ph.truth.params["lesion"]["side"]
    code = 1 if side == "right" else 2
    assert (labels[ph.truth.masks["core"]] == code).mean() > 0.99
    # hemispheres of similar size
    n_right, n_left = (labels == 1).sum(), (labels == 2).sum()
    assert abs(n_right - n_left) / (n_right + n_left) < 0.1


def test_synthetic_tilted_ellipse():
    ii, jj = np.meshgrid(np.arange(96), np.arange(96), indexing="ij")
    img = np.full((96, 96, 3), -1000.0, np.float32)
    th = np.deg2rad(8.0)
    u = (ii - 50) * np.cos(th) + (jj - 46) * np.sin(th)
    v = -(ii - 50) * np.sin(th) + (jj - 46) * np.cos(th)
    head = (u / 30.0) ** 2 + (v / 40.0) ** 2 < 1
    img[head] = 40.0
    img[head & ((u / 30.0) ** 2 + (v / 40.0) ** 2 > 0.8)] = 1000.0  # skull
    img[head & (np.abs(u - 10) < 4) & (np.abs(v) < 10)] = 10.0  # symmetric pair of ventricles
    img[head & (np.abs(u + 10) < 4) & (np.abs(v) < 10)] = 10.0
    affine = np.diag([1.0, 1.0, 5.0, 1.0])
    m = fit_midline(img, (1.0, 1.0, 5.0), affine)
    assert abs(m.angle_deg - 8.0) < 0.5
    assert abs(m.offset_mm - (50 * np.cos(th) + 46 * np.sin(th))) < 0.5
    assert abs(m.tilt_deg) < 0.5


def test_bad_input():
    with pytest.raises(InputError, match="expected shape \\(x, y, z\\)"):
        fit_midline(np.zeros((4, 4)), (1, 1, 1), np.eye(4))
    with pytest.raises(InputError, match="spacing"):
        fit_midline(np.zeros((4, 4, 2)), (1, 1), np.eye(4))
    with pytest.raises(InputError, match="affine"):
        fit_midline(np.zeros((4, 4, 2)), (1, 1, 1), np.zeros((4, 4)))
    with pytest.raises(InputError, match="no head"):
        fit_midline(np.full((16, 16, 2), -1000.0), (1, 1, 1), np.eye(4))

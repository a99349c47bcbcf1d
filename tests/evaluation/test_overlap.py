"""Dice, volumes and volume errors of masks on tiny arrays with hand-counted answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ctpmaps.errors import InputError
from ctpmaps.evaluation import compare_masks, dice, volume_error_ml, volume_ml, voxel_volume_ml


@pytest.mark.parametrize("shape", [(4,), (2, 2), (1, 2, 2)])
def test_dice_counts_overlap(shape):
    a = np.array([1, 1, 1, 0], bool).reshape(shape)
    b = np.array([0, 1, 1, 1], bool).reshape(shape)
    assert dice(a, b) == pytest.approx(2 * 2 / (3 + 3))
    assert dice(a, a) == 1.0
    assert dice(a, ~a) == 0.0


def test_dice_both_empty_is_undefined_unless_a_value_is_chosen():
    empty = np.zeros((3, 3), bool)
    assert math.isnan(dice(empty, empty))
    assert dice(empty, empty, empty=1.0) == 1.0
    one = empty.copy()
    one[1, 1] = True
    assert dice(empty, one) == 0.0  # one empty mask is a real disagreement, not undefined


def test_dice_rejects_labels_and_mismatched_shapes():
    a = np.ones((2, 2), bool)
    with pytest.raises(InputError, match="boolean"):
        dice(a, np.ones((2, 2), np.uint8))
    with pytest.raises(InputError, match=r"\(2, 2\)"):
        dice(a, np.ones((2, 3), bool))


def test_volumes_and_errors_in_ml():
    assert voxel_volume_ml((0.5, 0.5, 5.0)) == pytest.approx(0.00125)
    assert voxel_volume_ml((2.0, 2.0, 5.0, 1.5)) == pytest.approx(0.02)  # time spacing ignored
    mask = np.zeros((4, 4, 2), bool)
    mask[:2, :3, 0] = True  # 6 voxels
    assert volume_ml(mask, 0.02) == pytest.approx(0.12)
    assert volume_error_ml(8.0, 10.0) == (-2.0, 2.0)
    signed, absolute = volume_error_ml(np.array([1.0, 5.0]), np.array([3.0, 2.0]))
    np.testing.assert_allclose(signed, [-2.0, 3.0])
    np.testing.assert_allclose(absolute, [2.0, 3.0])
    with pytest.raises(InputError, match="voxel_ml"):
        volume_ml(mask, 0.0)
    with pytest.raises(InputError, match="spacing"):
        voxel_volume_ml((1.0, -1.0, 1.0))


def test_compare_masks():
    ref = np.zeros((5, 5), bool)
    ref[:2] = True  # 10 voxels
    est = np.zeros((5, 5), bool)
    est[1:4] = True  # 15 voxels, 5 shared
    c = compare_masks(est, ref, voxel_ml=0.5)
    assert c.dice == pytest.approx(2 * 5 / 25)
    assert (c.estimate_ml, c.reference_ml) == (7.5, 5.0)
    assert (c.signed_error_ml, c.absolute_error_ml) == (2.5, 2.5)
    assert c.as_dict()["dice"] == pytest.approx(0.4)
    empty = np.zeros((5, 5), bool)
    assert compare_masks(empty, empty, voxel_ml=0.5).as_dict()["dice"] is None  # JSON null

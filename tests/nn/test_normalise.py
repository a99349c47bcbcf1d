"""Normalisation: input window, target ranges (no 8-bit wrap), frame sub-sampling."""

from __future__ import annotations

import numpy as np
import pytest

from ctpmaps.errors import InputError
from ctpmaps.nn.normalise import (
    INPUT_MEAN,
    INPUT_STD,
    TARGET_RANGES,
    denormalise_target,
    frames_to_slices,
    map_to_slices,
    normalise_frames,
    normalise_target,
    slices_to_map,
    subsample_frames,
)


def test_input_window_c40_w400_then_seed_standardisation():
    hu = np.array([-1000, -160, 40, 240, 3000], dtype=np.float32)
    x = normalise_frames(hu)
    expected = (np.array([0, 0, 0.5, 1, 1]) - INPUT_MEAN) / INPUT_STD
    np.testing.assert_allclose(x, expected, rtol=1e-6)
    assert x.dtype == np.float32


@pytest.mark.parametrize("name", sorted(TARGET_RANGES))
def test_whole_range_survives_the_round_trip(name):
    low, high = TARGET_RANGES[name]
    values = np.linspace(low, high, 100_001, dtype=np.float32)
    back = denormalise_target(normalise_target(values, name), name)
    np.testing.assert_allclose(back, values, atol=1e-5 * (high - low))
    # strictly monotone: no value wraps onto another
    assert np.all(np.diff(normalise_target(values, name)) >= 0)


def test_cbv_between_3_and_4_does_not_wrap():
    # the seed's 8-bit windowing sent these to ~0; here they stay at 0.3-0.4 of 0-10 mL/100 g
    cbv = np.linspace(3.0, 4.0, 1001, dtype=np.float32)
    n = normalise_target(cbv, "cbv")
    assert n.min() >= 0.3 - 1e-6 and n.max() <= 0.4 + 1e-6
    np.testing.assert_allclose(denormalise_target(n, "cbv"), cbv, atol=1e-5)


def test_targets_clip_and_nan_becomes_zero():
    n = normalise_target(np.array([-5.0, np.nan, 200.0, np.inf]), "cbf")
    np.testing.assert_array_equal(n, [0.0, 0.0, 1.0, 0.0])


def test_custom_range_and_bad_names():
    np.testing.assert_allclose(normalise_target([2.0], "cbv", value_range=(0, 4)), [0.5])
    with pytest.raises(InputError, match="expected one of"):
        normalise_target([1.0], "oef")
    with pytest.raises(InputError, match="low < high"):
        normalise_target([1.0], "cbv", value_range=(4, 4))


def test_subsampling_by_uniform_stride_from_frame_0():
    assert subsample_frames(89, 5).tolist() == [0, 17, 34, 51, 68]
    assert subsample_frames(89, None).tolist() == list(range(89))
    assert subsample_frames(89, 89).tolist() == list(range(89))
    assert subsample_frames(18, 6).tolist() == [0, 3, 6, 9, 12, 15]
    for bad in (0, 90, 2.5):
        with pytest.raises(InputError, match="frames"):
            subsample_frames(89, bad)


def test_slices_layout_round_trip():
    rng = np.random.default_rng(0)
    frames = rng.normal(40, 50, (6, 5, 3, 4)).astype(np.float32)  # x, y, z, t
    s = frames_to_slices(frames, np.array([0, 2]))
    assert s.shape == (3, 2, 5, 6)  # z, T, H=y, W=x
    np.testing.assert_allclose(s[1, 1, 4, 2], normalise_frames(frames[2, 4, 1, 2]))
    m = rng.random((6, 5, 3)).astype(np.float32)
    np.testing.assert_array_equal(slices_to_map(map_to_slices(m)), m)

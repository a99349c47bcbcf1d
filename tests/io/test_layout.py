"""The blocked copy into C order gives the same values as a plain copy, for any layout."""

import numpy as np
import pytest

from ctpmaps.io._layout import c_order_copy


@pytest.mark.parametrize("shape", [(70, 33, 3, 5), (32, 1, 2, 1), (5, 4, 3, 2)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
@pytest.mark.parametrize("order", ["F", "C"])
def test_c_order_copy_equals_plain_copy(shape, dtype, order):
    rng = np.random.default_rng(0)
    frames = np.asarray(rng.normal(0, 100, shape).astype(dtype), order=order)
    out = c_order_copy(frames)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, frames.astype(np.float32))
    assert not np.shares_memory(out, frames)


def test_c_order_copy_into_given_array():
    frames = np.asfortranarray(np.arange(2 * 40 * 3 * 4, dtype=np.float32).reshape(40, 2, 3, 4))
    out = np.zeros(frames.shape, np.float32)
    assert c_order_copy(frames, out) is out
    np.testing.assert_array_equal(out, frames)

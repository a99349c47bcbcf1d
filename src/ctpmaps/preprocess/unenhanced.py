"""The unenhanced image of a study: the mean of its pre-bolus frames.

One definition for the whole project: the brain mask, the intracranial search region of
the input functions, the midline, the report's background and the DICOM exports' reference
image all use it, with the number of pre-bolus frames the perfusion stage found
(`ctpmaps.perfusion.maps.MapsResult.baseline_frames`).
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

__all__ = ["DEFAULT_BASELINE_FRAMES", "unenhanced"]

#: Pre-bolus frames assumed before the bolus arrival is known (0-1 s at 0.5 s frames:
#: contrast reaches the head after 5 s in every protocol we know).
DEFAULT_BASELINE_FRAMES = 3


def unenhanced(frames: np.ndarray, n_baseline: int = DEFAULT_BASELINE_FRAMES) -> np.ndarray:
    """Mean of the first ``n_baseline`` frames.

    Parameters
    ----------
    frames : ndarray, shape (..., t)
        HU frames, time last (``(x, y, z, t)`` or ``(n_vox, t)``).
    n_baseline : int
        Number of pre-bolus frames, 1 to t.

    Returns
    -------
    ndarray, shape (...)
        HU; float32 (float64 stays float64).

    Examples
    --------
    >>> unenhanced(np.array([[30.0, 32.0, 80.0]]), 2)
    array([31.])
    """
    frames = np.asarray(frames)
    n_t = frames.shape[-1] if frames.ndim else 0
    if int(n_baseline) != n_baseline or not 1 <= int(n_baseline) <= n_t:
        raise InputError("n_baseline", f"expected an integer in [1, {n_t}], got {n_baseline!r}")
    dtype = frames.dtype if frames.dtype == np.float64 else np.float32
    return frames[..., : int(n_baseline)].mean(axis=-1, dtype=np.float64).astype(dtype)

"""Normalisation of the U-Net's inputs and targets, frame sub-sampling and slice tensors.

Inputs (as the seed's public code)
    HU are windowed with centre 40 and width 400 onto [0, 1] (-160 HU -> 0, 240 HU -> 1,
    clipped), then standardised with the mean 0.2375 and standard deviation 0.3159 the
    seed measured on UniToBrain's filtered frames: ``x = (clip((hu + 160) / 400, 0, 1) -
    0.2375) / 0.3159``. Air and bone saturate; parenchyma (~35 HU) and its 10-60 HU
    enhancement sit inside the window.

Targets
    Each map's physical range (`TARGET_RANGES`) is mapped linearly onto [0, 1] and clipped,
    in float32: no 8-bit stage, so every value of the range survives the round trip (the
    seed's 8-bit windowing wrapped CBV between 3 and 4 mL/100 g to near 0). The ranges:

    ======  ==============  =====================================================
    map     range           why
    ======  ==============  =====================================================
    CBV     0-10 mL/100 g   grey matter 4-5, white matter 2-2.5; twice the grey
                            matter value keeps hyperaemia, only vessels clip
    CBF     0-150 mL/100    grey matter 50-80, white matter 20-30; hyperaemic
            g/min           cortex rarely exceeds 120; vessels clip
    MTT     0-30 s          normal 3-5 s, ischaemic tissue 8-20 s
    TTP     0-50 s          from the first frame; covers the seed's 44 s and the
                            shuttle protocol's 48 s acquisitions
    Tmax    0-30 s          normal 0-2 s, the 6 s and 10 s thresholds, severe
                            delays up to ~20 s
    delay   0-20 s          arrival delay relative to the AIF
    ======  ==============  =====================================================

    A trained model stores its range; `denormalise_target` maps its output back to
    physical units. Normalised MSE (the paper's Table 1 metric) is measured on this
    [0, 1] scale, so it depends on the range: say which when comparing numbers.

Slices
    A study's frames ``(x, y, z, t)`` become per-slice tensors ``(z, T, H, W)`` with
    ``H = y`` (image rows) and ``W = x`` (columns); maps ``(H, W)`` go back to ``(x, y)``.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..physics import MAP_UNITS

__all__ = [
    "HU_WINDOW",
    "INPUT_MEAN",
    "INPUT_STD",
    "TARGET_RANGES",
    "TARGET_UNITS",
    "FOLD_METRICS",
    "normalise_frames",
    "normalise_target",
    "denormalise_target",
    "subsample_frames",
    "frames_to_slices",
    "map_to_slices",
    "slices_to_map",
]

#: HU window (centre, width) of the inputs.
HU_WINDOW = (40.0, 400.0)
#: Mean and standard deviation of the windowed inputs (the seed's values).
INPUT_MEAN = 0.2375
INPUT_STD = 0.3159
#: Physical range (low, high) of each map, mapped onto [0, 1].
TARGET_RANGES: dict[str, tuple[float, float]] = {
    "cbv": (0.0, 10.0),
    "cbf": (0.0, 150.0),
    "mtt": (0.0, 30.0),
    "ttp": (0.0, 50.0),
    "tmax": (0.0, 30.0),
    "delay": (0.0, 20.0),
}
#: Unit of each map.
TARGET_UNITS = MAP_UNITS

#: What a training fold records of its best epoch on this target scale: MSE and PSNR (dB)
#: over the slice and inside the brain, with a constant predictor's MSE beside them. Defined
#: here, without torch, so that the evaluation reads training runs without importing it.
FOLD_METRICS = (
    "train_mse",
    "train_mse_brain",
    "val_mse",
    "val_psnr",
    "val_const_mse",
    "val_mse_brain",
    "val_psnr_brain",
    "val_const_mse_brain",
)


def normalise_frames(
    hu: np.ndarray,
    *,
    window: tuple[float, float] = HU_WINDOW,
    mean: float = INPUT_MEAN,
    std: float = INPUT_STD,
) -> np.ndarray:
    """Window HU onto [0, 1] and standardise.

    Parameters
    ----------
    hu : ndarray, any shape
        Attenuation in HU.
    window : (centre, width), optional
        HU window; default C40/W400.
    mean, std : float, optional
        Standardisation of the windowed values.

    Returns
    -------
    ndarray, same shape, float32
        ``(clip((hu - centre + width / 2) / width, 0, 1) - mean) / std``.

    Examples
    --------
    >>> import numpy as np
    >>> normalise_frames(np.array([-1000.0, 40.0, 1000.0])).round(4)
    array([-0.7518,  0.831 ,  2.4137], dtype=float32)
    """
    centre, width = (float(v) for v in window)
    if not width > 0 or not std > 0:
        raise InputError("window", f"expected a positive width and std, got {width}, {std}")
    x = (np.asarray(hu, dtype=np.float32) - np.float32(centre - width / 2)) / np.float32(width)
    x = (np.clip(x, 0.0, 1.0) - np.float32(mean)) / np.float32(std)
    return np.asarray(x, dtype=np.float32)


def _range(name: str, value_range: tuple[float, float] | None) -> tuple[float, float]:
    if value_range is None:
        if name not in TARGET_RANGES:
            raise InputError("target", f"expected one of {list(TARGET_RANGES)}, got {name!r}")
        value_range = TARGET_RANGES[name]
    low, high = (float(v) for v in value_range)
    if not (np.isfinite(low) and np.isfinite(high) and high > low):
        raise InputError("value_range", f"expected finite low < high, got {value_range!r}")
    return low, high


def normalise_target(
    values: np.ndarray, name: str, *, value_range: tuple[float, float] | None = None
) -> np.ndarray:
    """Physical map values onto [0, 1] (clipped); NaN (outside a fit's mask) becomes 0.

    Parameters
    ----------
    values : ndarray, any shape
        Map in the unit of `TARGET_UNITS` [name].
    name : str
        Map name, a key of `TARGET_RANGES`.
    value_range : (low, high), optional
        Physical range instead of ``TARGET_RANGES[name]``.

    Returns
    -------
    ndarray, same shape, float32 in [0, 1]

    Examples
    --------
    >>> import numpy as np
    >>> normalise_target(np.array([0.0, 3.5, 12.0, np.nan]), "cbv")
    array([0.  , 0.35, 1.  , 0.  ], dtype=float32)
    """
    low, high = _range(name, value_range)
    v = np.asarray(values, dtype=np.float32)
    out = (v - np.float32(low)) / np.float32(high - low)
    out = np.where(np.isfinite(out), out, np.float32(0.0))
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)


def denormalise_target(
    values: np.ndarray, name: str, *, value_range: tuple[float, float] | None = None
) -> np.ndarray:
    """[0, 1] network outputs back to physical units (float32), the inverse of
    `normalise_target` inside the range."""
    low, high = _range(name, value_range)
    v = np.asarray(values, dtype=np.float32)
    return (v * np.float32(high - low) + np.float32(low)).astype(np.float32, copy=False)


def subsample_frames(n_frames: int, n_keep: int | None) -> np.ndarray:
    """Indices of ``n_keep`` frames by uniform stride from frame 0, as the seed's code.

    The stride is ``n_frames // n_keep``: 89 frames and ``n_keep = 5`` give frames 0, 17,
    34, 51, 68 (the tail beyond ``stride * n_keep`` is dropped, as the seed did).

    Parameters
    ----------
    n_frames : int
        Frames in the study.
    n_keep : int or None
        Frames to keep (T); None keeps all.

    Returns
    -------
    ndarray of int, shape (n_keep,)

    Examples
    --------
    >>> subsample_frames(89, 5).tolist()
    [0, 17, 34, 51, 68]
    """
    if n_keep is None:
        n_keep = n_frames
    if int(n_keep) != n_keep or not 1 <= n_keep <= n_frames:
        raise InputError(
            "frames", f"expected 1 to {n_frames} frames (the study has {n_frames}), got {n_keep}"
        )
    stride = n_frames // int(n_keep)
    return np.arange(int(n_keep)) * stride


def frames_to_slices(frames: np.ndarray, indices: np.ndarray | None = None) -> np.ndarray:
    """``(x, y, z, t)`` HU frames -> normalised per-slice tensors ``(z, T, H=y, W=x)``.

    Parameters
    ----------
    frames : ndarray, shape (x, y, z, t)
        HU frames (preprocessed: registered and filtered).
    indices : ndarray of int, shape (T,), optional
        Frames to keep (`subsample_frames`); all by default.

    Returns
    -------
    ndarray, shape (z, T, y, x), float32
        `normalise_frames` of the kept frames.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4:
        raise InputError("frames", f"expected shape (x, y, z, t), got {frames.shape}")
    if indices is not None:
        frames = frames[..., np.asarray(indices)]
    return np.ascontiguousarray(normalise_frames(frames).transpose(2, 3, 1, 0))


def map_to_slices(values: np.ndarray) -> np.ndarray:
    """A map ``(x, y, z)`` -> ``(z, H=y, W=x)``."""
    values = np.asarray(values)
    if values.ndim != 3:
        raise InputError("map", f"expected shape (x, y, z), got {values.shape}")
    return np.ascontiguousarray(values.transpose(2, 1, 0))


def slices_to_map(slices: np.ndarray) -> np.ndarray:
    """Per-slice maps ``(z, H=y, W=x)`` -> ``(x, y, z)``."""
    slices = np.asarray(slices)
    if slices.ndim != 3:
        raise InputError("slices", f"expected shape (z, H, W), got {slices.shape}")
    return np.ascontiguousarray(slices.transpose(2, 1, 0))

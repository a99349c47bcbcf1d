"""Model/Fit base classes of the perfusion models and the `PerfusionMaps` they produce.

A model holds what depends on the acquisition (arterial input function, frame times,
hematocrit factor, density); ``model.fit(concentration, mask=...)`` fits every masked
voxel at once on ``(n_vox, t)`` curves and returns a fit whose maps are cached properties
(DIPY's reconstruction pattern). Every model can ``predict`` its curves.

The module stays whole: it is the one contract every method implements (the maps
container, the input checks, the voxel layout and chunking, the model-free map formulas and
the two base classes), and a new method reads it top to bottom.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

import numpy as np

from .._threads import n_threads
from ..errors import FitError, InputError
from ..physics import BRAIN_DENSITY, FLOW_UNIT, HEMATOCRIT_FACTOR, MAP_UNITS, tissue_scale
from .timing import time_to_peak, trapezoid_weights

__all__ = [
    "MAP_NAMES",
    "UNITS",
    "PerfusionMaps",
    "PerfusionModel",
    "PerfusionFit",
    "VoxelLayout",
    "check_times",
    "check_aif",
    "decay",
    "tail_area",
    "area_ratio",
    "cbv_from_area_ratio",
    "mtt_from",
    "chunks",
    "map_chunks",
    "single_threaded_blas",
]

#: Names of the maps, in the order they are written.
MAP_NAMES = ("cbf", "cbv", "mtt", "ttp", "tmax", "delay")
#: Units of each map.
UNITS = MAP_UNITS
#: Voxels per chunk: bounds the memory of the (chunk, t) and (chunk, grid) temporaries.
DEFAULT_CHUNK = 16384


@dataclass
class PerfusionMaps:
    """The perfusion maps of one study, from a model fit or from the U-Net.

    Parameters
    ----------
    cbf, cbv, mtt, ttp, tmax, delay : ndarray, shape (x, y, z), float32
        Cerebral blood flow (mL/100 g/min), cerebral blood volume (mL/100 g), mean transit
        time (s), time to peak of the tissue curve (s from the first frame), Tmax (s: when
        the impulse response, residue and tracer delay relative to the AIF, first reaches
        its maximum; each model documents how it reads it, on a scale where healthy tissue
        is near 0) and tracer delay relative to the AIF (s, the arrival). NaN outside the
        mask. Any spatial shape is accepted as long as all maps share it.
    units : dict
        Unit of each map (`UNITS`).
    method : str
        What made the maps: a method of `ctpmaps.perfusion.METHODS` (``"nlr"``, ``"cnn"`` ...).
    """

    cbf: np.ndarray
    cbv: np.ndarray
    mtt: np.ndarray
    ttp: np.ndarray
    tmax: np.ndarray
    delay: np.ndarray
    units: dict[str, str] = field(default_factory=lambda: dict(UNITS))
    method: str = ""

    def __post_init__(self) -> None:
        shape = np.shape(self.cbf)
        for name in MAP_NAMES:
            value = np.asarray(getattr(self, name), dtype=np.float32)
            if value.shape != shape:
                raise InputError(name, f"expected shape {shape} like cbf, got {value.shape}")
            setattr(self, name, value)

    @property
    def shape(self) -> tuple[int, ...]:
        """Spatial shape shared by all maps."""
        return tuple(np.shape(self.cbf))

    def as_dict(self) -> dict[str, np.ndarray]:
        """The maps by name, in `MAP_NAMES` order."""
        return {name: getattr(self, name) for name in MAP_NAMES}


# ----------------------------------------------------------------------------- checks
def check_times(times: Any) -> np.ndarray:
    """Frame times as float64, checked: 1-D, finite, strictly increasing, >= 3 frames."""
    times = np.asarray(times, dtype=np.float64)
    if times.ndim != 1 or times.size < 3:
        raise InputError("times", f"expected shape (t,) with t >= 3, got shape {times.shape}")
    if not np.all(np.isfinite(times)):
        raise InputError("times", "expected finite values, found NaN or inf")
    if np.any(np.diff(times) <= 0):
        raise InputError("times", "expected strictly increasing frame times")
    return times


def check_aif(aif: Any, times: np.ndarray) -> np.ndarray:
    """Arterial input function as float64, checked against ``times`` and for a bolus.

    Raises
    ------
    InputError
        Wrong shape or non-finite values.
    FitError
        No bolus: the peak does not rise above five times the noise of the curve.
    """
    aif = np.asarray(aif, dtype=np.float64)
    if aif.shape != times.shape:
        raise InputError(
            "aif", f"expected shape {times.shape} (one value per frame), got {aif.shape}"
        )
    if not np.all(np.isfinite(aif)):
        raise InputError("aif", "expected finite values, found NaN or inf")
    d = np.diff(aif)
    noise = 1.4826 * float(np.median(np.abs(d - np.median(d)))) / math.sqrt(2.0)
    start = float(np.median(aif[: max(1, int(np.argmax(aif)))]))
    rise = float(aif.max()) - max(start, 0.0)
    if not (rise > 5.0 * noise and rise > 0 and float(trapezoid_weights(times) @ aif) > 0):
        raise FitError(
            f"aif: no contrast bolus: peak rises {rise:.4g} above its start, "
            f"expected more than 5 x noise ({5.0 * noise:.4g}) and a positive area"
        )
    return aif


def check_factor(name: str, value: float) -> float:
    """A positive finite physical factor."""
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise InputError(name, f"expected a positive finite number, got {value!r}")
    return value


# ----------------------------------------------------------------------------- layout
@dataclass
class VoxelLayout:
    """Where the fitted ``(n_fit, t)`` curves came from in the input array.

    Parameters
    ----------
    shape : tuple
        Spatial shape of the input, ``(x, y, z)`` or ``(n_vox,)``.
    index : ndarray, shape (n_fit,), int
        Flat (C-order) indices of the fitted voxels.
    dtype : numpy dtype
        Floating dtype of the input (float32 stays float32).
    """

    shape: tuple[int, ...]
    index: np.ndarray
    dtype: np.dtype

    @property
    def n_fit(self) -> int:
        """Number of fitted voxels."""
        return int(self.index.size)

    def unflatten(
        self, values: np.ndarray, *, dtype: Any = np.float32, fill: Any = np.nan
    ) -> np.ndarray:
        """Scatter per-voxel ``values`` (shape (n_fit, ...)) to the spatial shape, ``fill``
        (NaN) elsewhere."""
        values = np.asarray(values)
        out = np.full((math.prod(self.shape),) + values.shape[1:], fill, dtype=dtype)
        out[self.index] = values
        return out.reshape(self.shape + values.shape[1:])


def voxel_curves(concentration: Any, mask: Any, n_frames: int) -> tuple[np.ndarray, VoxelLayout]:
    """Validate ``concentration`` and ``mask`` and gather the masked curves.

    Returns
    -------
    curves : ndarray, shape (n_fit, t)
        float32 unless the input is float64.
    layout : VoxelLayout
    """
    conc = np.asarray(concentration)
    if conc.ndim not in (2, 4) or conc.shape[-1] != n_frames:
        raise InputError(
            "concentration",
            f"expected shape (x, y, z, {n_frames}) or (n_vox, {n_frames}), got {conc.shape}",
        )
    dtype = conc.dtype if conc.dtype == np.float64 else np.dtype(np.float32)
    shape = conc.shape[:-1]
    flat = conc.reshape(-1, n_frames)
    if mask is None:
        index = np.arange(flat.shape[0])
    else:
        m = np.asarray(mask)
        if m.shape != shape:
            raise InputError(
                "mask", f"expected shape {shape} like the concentration, got {m.shape}"
            )
        index = np.flatnonzero(m.astype(bool, copy=False).ravel())
    curves = np.asarray(flat[index], dtype=dtype)
    if not np.all(np.isfinite(curves)):
        bad = int(np.count_nonzero(~np.all(np.isfinite(curves), axis=1)))
        raise InputError(
            "concentration",
            f"expected finite values inside the mask, found NaN or inf in {bad} voxels",
        )
    return curves, VoxelLayout(tuple(shape), index, dtype)


def chunks(n: int, size: int):
    """Slices of ``range(n)`` of at most ``size`` items."""
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def map_chunks(func, n: int, size: int, workers: int) -> None:
    """Call ``func(slice)`` for each chunk of ``range(n)``, on ``workers`` threads.

    numpy releases the GIL in its array loops, so chunks of voxels run in parallel;
    ``func`` writes its results into disjoint slices of preallocated arrays.
    """
    slices = list(chunks(n, size))
    if workers <= 1 or len(slices) <= 1:
        for sl in slices:
            func(sl)
        return
    with single_threaded_blas(), ThreadPoolExecutor(min(workers, len(slices))) as pool:
        for _ in pool.map(func, slices):
            pass


@contextmanager
def single_threaded_blas():
    """One BLAS thread: for workers running in parallel (no oversubscription), and for
    small matrices, where OpenBLAS's threads cost more than they give on a busy machine."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


# ----------------------------------------------------------------------------- maps
#: Width (s) of the two last windows whose means give a curve's decay beyond the last frame.
TAIL_WINDOW = 4.0
#: Longest decay time constant (s) extrapolated.
TAIL_TAU_MAX = 60.0
#: An AIF whose last window is above this share of its peak still carries recirculation.
TAIL_AIF_SHARE = 0.02


def decay(curves: np.ndarray, times: np.ndarray, *, window: float = TAIL_WINDOW):
    """Exponential decay of each curve over its last two ``window`` s.

    Returns
    -------
    tau : ndarray, shape (n,) or ()
        ``window / ln(m1 / m2)`` in s from the means ``m1`` (the window before) and ``m2``
        (the last window), at most `TAIL_TAU_MAX`; 0 where the curve is not decaying
        (``m1 <= m2`` or ``m2 <= 0``) or a window holds fewer than two frames.
    level : ndarray, shape (n,) or ()
        ``m2``, the mean over the last window.
    centre : float
        s from the last window's centre to the last frame.
    """
    c = np.asarray(curves)
    t = np.asarray(times, dtype=np.float64)
    last = t > t[-1] - window
    before = (t > t[-1] - 2 * window) & ~last
    m2 = c[..., last].mean(axis=-1, dtype=np.float64)
    if last.sum() < 2 or before.sum() < 2:
        return np.zeros_like(m2), m2, 0.0
    m1 = c[..., before].mean(axis=-1, dtype=np.float64)
    decaying = (m1 > m2) & (m2 > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        step = (t[last].mean() - t[before].mean()) / np.log(np.where(decaying, m1 / m2, 2.0))
    tau = np.where(decaying, np.clip(step, 0.0, TAIL_TAU_MAX), 0.0)
    return tau, m2, float(t[-1] - t[last].mean())


def tail_area(level: np.ndarray, tau: np.ndarray, centre: float) -> np.ndarray:
    """Area beyond the last frame of a curve at ``level`` ``centre`` s before it, decaying
    with time constant ``tau`` (s): ``level * exp(-centre / tau) * tau`` (0 where tau is)."""
    tau = np.asarray(tau, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.where(tau > 0, level * np.exp(-centre / np.where(tau > 0, tau, 1.0)) * tau, 0.0)


def area_ratio(curves: np.ndarray, aif: np.ndarray, times: np.ndarray) -> np.ndarray:
    """``∫C_tissue / ∫C_a``: the trapezoid rule over the acquisition, plus each curve's
    exponential tail beyond it where the AIF has returned to baseline.

    The indicator-dilution CBV is the ratio of whole areas. While the AIF still carries
    recirculation at the end (its last window above `TAIL_AIF_SHARE` of its peak, as in
    patients and in the phantom), a tissue curve follows it and the ratio over the
    acquisition already is the ratio of the whole areas; extrapolating both tails there
    only adds the noise of the tissue's (on the phantom: CBV 6-24 % low, interquartile
    ranges up by a third). Where the AIF has returned to baseline, what is left of a
    tissue curve is its own slow residue still emptying, and both curves get their tails
    (`decay`, `tail_area`): on the minimal forward model (``tests/forward``) a 44 s
    acquisition cut 9-13 % off the CBV of exponential residues of MTT 12 s arriving 4 s
    late; with the tails, within 2.5 %.

    Parameters
    ----------
    curves : ndarray, shape (n, t)
        Tissue enhancement.
    aif : ndarray, shape (t,)
        Arterial enhancement.
    times : ndarray, shape (t,)
        Frame times in s (any spacing).

    Returns
    -------
    ndarray, shape (n,), float64
    """
    w = trapezoid_weights(times)
    tissue = (curves @ w.astype(curves.dtype)).astype(np.float64)
    arterial = float(w @ aif)
    tau_a, level_a, centre = decay(aif, times)
    if level_a > TAIL_AIF_SHARE * float(np.max(aif)):
        return tissue / arterial
    tau, level, _ = decay(curves, times)
    tissue += tail_area(level, tau, centre)
    return tissue / (arterial + float(tail_area(level_a, tau_a, centre)))


def cbv_from_area_ratio(ratio: np.ndarray, scale: float) -> np.ndarray:
    """CBV in mL/100 g from ``∫C/∫C_a`` and the tissue scale ``rho / kappa / 6000``.

    ``∫C/∫C_a = scale * CBF * MTT`` (s), so ``CBV = CBF * MTT / 60 = ratio / (60 * scale)``,
    i.e. ``(kappa / rho) * 100 * ratio``.
    """
    return np.asarray(ratio, dtype=np.float64) / (scale * FLOW_UNIT / 100.0)


def mtt_from(cbf: np.ndarray, cbv: np.ndarray) -> np.ndarray:
    """MTT in s by the central volume theorem, ``60 * CBV / CBF``; NaN where CBF <= 0."""
    cbf = np.asarray(cbf, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(cbf > 0, 60.0 * np.asarray(cbv, dtype=np.float64) / cbf, np.nan)


# ----------------------------------------------------------------------------- classes
class PerfusionModel:
    """Base of the perfusion models: the acquisition-dependent part.

    Parameters
    ----------
    aif : ndarray, shape (t,)
        Arterial input function, enhancement (ΔHU, or any concentration unit shared with
        the tissue curves) at ``times``.
    times : ndarray, shape (t,)
        Frame times in s, strictly increasing (any spacing).
    hematocrit_factor : float
        ``kappa = (1 - Hct_large) / (1 - Hct_small)``; 1 to report per mL of blood.
    density : float
        Brain density ``rho`` in g/mL; 1 to report per 100 mL of tissue.
    chunk_size : int
        Voxels processed at once (bounds memory).
    workers : int, optional
        Threads working on chunks at once; by default the CPUs available.
    """

    #: Short name used on the command line.
    method: ClassVar[str] = ""
    #: The fit class this model returns.
    fit_class: ClassVar[type[PerfusionFit]]

    def __init__(
        self,
        aif: np.ndarray,
        times: np.ndarray,
        *,
        hematocrit_factor: float = HEMATOCRIT_FACTOR,
        density: float = BRAIN_DENSITY,
        chunk_size: int = DEFAULT_CHUNK,
        workers: int | None = None,
    ) -> None:
        self.times = check_times(times)
        self.aif = check_aif(aif, self.times)
        self.hematocrit_factor = check_factor("hematocrit_factor", hematocrit_factor)
        self.density = check_factor("density", density)
        if int(chunk_size) < 1:
            raise InputError("chunk_size", f"expected a positive integer, got {chunk_size!r}")
        self.chunk_size = int(chunk_size)
        self.workers = n_threads(None) if workers is None else max(1, int(workers))
        #: ``rho / kappa / 6000``: C_tissue = scale * CBF * (C_a ⊛ R), time in s.
        self.scale = tissue_scale(hematocrit_factor=self.hematocrit_factor, density=self.density)

    @property
    def n_frames(self) -> int:
        """Number of frames."""
        return int(self.times.size)

    def fit(
        self,
        concentration: np.ndarray,
        *,
        mask: np.ndarray | None = None,
        spacing: tuple[float, float, float] | None = None,
    ) -> PerfusionFit:
        """Fit every masked voxel.

        Parameters
        ----------
        concentration : ndarray, shape (x, y, z, t) or (n_vox, t)
            Tissue enhancement (ΔHU) at ``times``; float32 stays float32.
        mask : ndarray of bool, shape (x, y, z) or (n_vox,), optional
            Voxels to fit; all by default. Maps are NaN outside.
        spacing : tuple of float, optional
            Voxel size (x, y, z) in mm, for models that use a voxel's neighbourhood (the
            NLR's residue shape); voxel-wise models ignore it.

        Returns
        -------
        PerfusionFit
        """
        curves, layout = voxel_curves(concentration, mask, self.n_frames)
        return self.fit_gathered(curves, layout, spacing=spacing)

    def fit_gathered(
        self,
        curves: np.ndarray,
        layout: VoxelLayout,
        *,
        spacing: tuple[float, float, float] | None = None,
    ) -> PerfusionFit:
        """`fit` of curves already gathered by `voxel_curves` (``curves`` (n_fit, t) and
        their ``layout``), so that two models fitted to the same voxels (the maps step's
        NLR and the sSVD that gives its Tmax) gather them once."""
        return self.fit_class(self, layout, **self._fit_curves(curves))

    def _fit_curves(self, curves: np.ndarray) -> dict[str, Any]:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n_frames={self.n_frames}, "
            f"hematocrit_factor={self.hematocrit_factor:.4g}, density={self.density:.4g})"
        )


class PerfusionFit:
    """Base of the fits: per-voxel parameters, maps as cached properties.

    Subclasses set the per-voxel arrays ``_cbf``, ``_cbv``, ``_tmax``, ``_delay`` (shape
    (n_fit,)) and ``_predict_voxels()``; maps come back in the input's spatial shape,
    float32, NaN outside the mask.
    """

    def __init__(self, model: PerfusionModel, layout: VoxelLayout) -> None:
        self.model = model
        self.layout = layout

    # per-voxel values, overridden by subclasses
    @cached_property
    def _cbf(self) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    @cached_property
    def _cbv(self) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    @cached_property
    def _mtt(self) -> np.ndarray:
        return mtt_from(self._cbf, self._cbv)

    @cached_property
    def _tmax(self) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    @cached_property
    def _delay(self) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    @cached_property
    def _ttp(self) -> np.ndarray:
        out = np.empty(self.layout.n_fit)

        def work(sl: slice) -> None:
            out[sl] = time_to_peak(self._predict_voxels(sl), self.model.times)

        map_chunks(work, self.layout.n_fit, self.model.chunk_size, self.model.workers)
        return out

    def _predict_voxels(self, sl: slice) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    # maps
    @cached_property
    def cbf(self) -> np.ndarray:
        """CBF in mL/100 g/min, shape (x, y, z) float32, NaN outside the mask."""
        return self.layout.unflatten(self._cbf)

    @cached_property
    def cbv(self) -> np.ndarray:
        """CBV in mL/100 g, shape (x, y, z) float32, NaN outside the mask."""
        return self.layout.unflatten(self._cbv)

    @cached_property
    def mtt(self) -> np.ndarray:
        """MTT in s, shape (x, y, z) float32; NaN outside the mask and where CBF <= 0."""
        return self.layout.unflatten(self._mtt)

    @cached_property
    def ttp(self) -> np.ndarray:
        """Time to peak of the fitted curve (s from the first frame), shape (x, y, z) float32."""
        return self.layout.unflatten(self._ttp)

    @cached_property
    def tmax(self) -> np.ndarray:
        """Tmax in s (model-specific definition), shape (x, y, z) float32."""
        return self.layout.unflatten(self._tmax)

    @cached_property
    def delay(self) -> np.ndarray:
        """Tracer delay relative to the AIF in s, shape (x, y, z) float32."""
        return self.layout.unflatten(self._delay)

    def predict(self) -> np.ndarray:
        """The modelled tissue curves at the model's frame times.

        Returns
        -------
        ndarray, shape (x, y, z, t) or (n_vox, t)
            Enhancement in the input's unit and floating dtype; NaN outside the mask.
        """
        out = np.empty((self.layout.n_fit, self.model.n_frames), dtype=self.layout.dtype)

        def work(sl: slice) -> None:
            out[sl] = self._predict_voxels(sl)

        map_chunks(work, self.layout.n_fit, self.model.chunk_size, self.model.workers)
        return self.layout.unflatten(out, dtype=self.layout.dtype)

    def maps(self) -> PerfusionMaps:
        """All maps as a `PerfusionMaps`."""
        return PerfusionMaps(
            **{name: getattr(self, name) for name in MAP_NAMES}, method=self.model.method
        )

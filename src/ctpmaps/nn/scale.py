"""The U-Net's inputs on one input-function scale (an option of training, kept by the model).

A tissue curve is its CBF times the input function passed through the tissue's residue, so
its enhancement grows with the input function's area as much as with CBV: from the frames
alone, a network cannot tell a patient of high CBV from one whose bolus reached the brain
denser (a larger or faster injection, a lower cardiac output). Trained without it, the
U-Net gives each patient about the cohort's level: its brain-mean CBF over the truth's
varies by 12 % between patients (``ctpmaps evaluate``'s level, docs/unet.md).

With ``TrainConfig.enhancement_scale`` each study's enhancement (each voxel's HU less the
mean of its baseline frames) is multiplied by `REFERENCE_AREA_HU_S` over the area of the
study's automatic input function (`ctpmaps.perfusion.maps.automatic_input_functions`: the
AIF scaled to the VOF's area, the same number the model-based methods divide by) before
the inputs are windowed, in training and, as the model's JSON records it, at inference.
The network then sees every study as if its bolus had one area; it still deconvolves
nothing and reads no input function's shape. What it costs: the automatic AIF and VOF
search must succeed (`FitError` otherwise, as for the model-based methods), and the
maps take on the VOF's errors of area (the partial volume of the sinus) as NLR's do.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import numpy as np

from ..errors import FitError
from ..io.study import Study
from ..preprocess.unenhanced import unenhanced

__all__ = ["REFERENCE_AREA_HU_S", "InputScale", "input_scale", "scale_enhancement", "scaled"]

log = logging.getLogger(__name__)

#: Input-function area (HU s) every study is scaled to. Any fixed value would do (a model
#: records the one it was trained with); this is the order of the automatic AIF's area at
#: the seed's protocol on the phantom's cohorts, so that the factors stay near 1 (the
#: study's area is in each training cache entry, ``input_scale``, and in run.json).
REFERENCE_AREA_HU_S = 4000.0


@dataclass(frozen=True)
class InputScale:
    """A study's automatic input function, as far as the scaling needs it.

    Attributes
    ----------
    area_hu_s : float
        Area under the automatic AIF's enhancement (HU s, over the whole acquisition).
    baseline_frames : int
        Pre-bolus frames; their mean is each voxel's baseline.
    """

    area_hu_s: float
    baseline_frames: int

    def factor(self, reference: float = REFERENCE_AREA_HU_S) -> float:
        """The enhancement's multiplier: ``reference`` over the study's area."""
        return float(reference) / self.area_hu_s

    def record(self) -> dict[str, float | int]:
        """JSON-ready (run.json)."""
        return {"area_hu_s": round(self.area_hu_s, 1), "baseline_frames": self.baseline_frames}


def input_scale(study: Study, *, brain: np.ndarray | None = None) -> InputScale:
    """The area of a study's automatic input function and its baseline frames.

    Parameters
    ----------
    study : Study
        HU frames (x, y, z, t), as the network sees them (filtered).
    brain : ndarray (x, y, z) bool, optional
        Brain mask; the automatic CT brain mask by default.

    Raises
    ------
    FitError
        No bolus, artery or vein found, or an input function without positive area.
    """
    from ..perfusion.maps import automatic_input_functions

    aif, _, n_base = automatic_input_functions(study, brain=brain)
    area = float(np.trapezoid(aif.curve, aif.times))
    if not np.isfinite(area) or area <= 0:
        raise FitError(f"the automatic input function has no positive area ({area:.1f} HU s)")
    log.info("input function: %.0f HU s over %d baseline frames", area, n_base)
    return InputScale(area, int(n_base))


def scale_enhancement(frames: np.ndarray, n_baseline: int, factor: float) -> np.ndarray:
    """``baseline + factor * (frames - baseline)``, the baseline each voxel's mean over its
    first ``n_baseline`` frames.

    Parameters
    ----------
    frames : ndarray (..., t)
        HU.
    n_baseline : int
        Pre-bolus frames (1 to t).
    factor : float
        Multiplier of the enhancement (> 0).

    Returns
    -------
    ndarray (..., t) float32

    Examples
    --------
    >>> import numpy as np
    >>> scale_enhancement(np.array([[30.0, 30.0, 50.0, 40.0]]), 2, 0.5).tolist()
    [[30.0, 30.0, 40.0, 35.0]]
    """
    frames = np.asarray(frames, dtype=np.float32)
    if not 1 <= n_baseline <= frames.shape[-1]:
        raise ValueError(f"n_baseline expected 1 to {frames.shape[-1]}, got {n_baseline}")
    if not factor > 0:
        raise ValueError(f"factor expected > 0, got {factor}")
    base = unenhanced(frames, n_baseline)[..., None]
    return base + np.float32(factor) * (frames - base)


def scaled(study: Study, scale: InputScale, reference: float = REFERENCE_AREA_HU_S) -> Study:
    """The study with its enhancement scaled to ``reference`` (`scale_enhancement`)."""
    frames = scale_enhancement(study.frames, scale.baseline_frames, scale.factor(reference))
    return dataclasses.replace(study, frames=frames)

"""Decision numbers of a CTP study: volumes, mismatch, hypoperfusion intensity ratio, and
the DEFUSE-3 target-mismatch profile.

- mismatch volume = hypoperfusion - core (the penumbra), mL;
- mismatch ratio = hypoperfusion / core (infinite for no core: reported as None with
  ``mismatch_ratio_infinite`` True);
- hypoperfusion intensity ratio (HIR) = volume of Tmax > 10 s / volume of Tmax > 6 s
  (Olivot et al. 2014; above 0.4 suggests poor collaterals); None without Tmax or without
  hypoperfusion;
- DEFUSE-3 target mismatch (Albers et al., NEJM 2018): core < 70 mL, mismatch volume
  >= 15 mL and mismatch ratio >= 1.8.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .segment import Lesions

__all__ = ["TargetMismatch", "DEFUSE3", "decision_numbers"]


@dataclass(frozen=True)
class TargetMismatch:
    """Thresholds of a target-mismatch profile.

    Attributes
    ----------
    core_below_ml : float
        Core volume must be below this, mL.
    mismatch_at_least_ml : float
        Mismatch (penumbra) volume must be at least this, mL.
    ratio_at_least : float
        Hypoperfusion / core must be at least this.
    """

    core_below_ml: float = 70.0
    mismatch_at_least_ml: float = 15.0
    ratio_at_least: float = 1.8


#: The DEFUSE-3 profile.
DEFUSE3 = TargetMismatch()


def decision_numbers(lesions: Lesions, *, profile: TargetMismatch = DEFUSE3) -> dict[str, Any]:
    """The numbers a stroke team decides on, JSON-ready.

    Parameters
    ----------
    lesions : Lesions
        Masks and voxel volume (`segment_lesions`).
    profile : TargetMismatch
        Target-mismatch thresholds (DEFUSE-3 by default).

    Returns
    -------
    dict
        ``core_ml``, ``hypoperfusion_ml``, ``penumbra_ml``, ``mismatch_ml`` (hypoperfusion -
        core, mL), ``mismatch_ratio`` (None when infinite), ``mismatch_ratio_infinite``,
        ``severe_hypoperfusion_ml`` and ``hypoperfusion_intensity_ratio`` (None without
        Tmax), ``affected_side`` (hemisphere holding most of the hypoperfusion, None when
        there is none), ``target_mismatch`` (bool) and the ``profile`` used.

    Examples
    --------
    >>> import numpy as np
    >>> from ctpmaps.lesion.segment import Lesions, LesionCriteria
    >>> core = np.zeros((10, 10, 2), bool); core[:2] = True
    >>> hypo = np.zeros_like(core); hypo[:6] = True
    >>> les = Lesions(core, hypo, hypo & ~core, None, np.ones(core.shape, np.uint8), 0.5,
    ...               "tmax", LesionCriteria())
    >>> d = decision_numbers(les)
    >>> d["core_ml"], d["mismatch_ml"], d["mismatch_ratio"], d["target_mismatch"]
    (20.0, 40.0, 3.0, True)
    """
    v = lesions.volumes_ml()
    core, hypo = v["core"], v["hypoperfusion"]
    mismatch = max(hypo - core, 0.0)
    infinite = core == 0 and hypo > 0
    ratio = None if core == 0 else hypo / core
    severe = v.get("severe_hypoperfusion")
    hir = severe / hypo if severe is not None and hypo > 0 else None
    side = None
    if lesions.hypoperfusion.any():
        counts = np.bincount(
            lesions.hemispheres[lesions.hypoperfusion].ravel(), minlength=3
        ).astype(float)
        side = "right" if counts[1] >= counts[2] else "left"
    ratio_ok = infinite or (ratio is not None and ratio >= profile.ratio_at_least)
    target = bool(
        core < profile.core_below_ml and mismatch >= profile.mismatch_at_least_ml and ratio_ok
    )
    return {
        "core_ml": round(core, 2),
        "hypoperfusion_ml": round(hypo, 2),
        "penumbra_ml": round(v["penumbra"], 2),
        "mismatch_ml": round(mismatch, 2),
        "mismatch_ratio": None if ratio is None else round(ratio, 3),
        "mismatch_ratio_infinite": bool(infinite),
        "severe_hypoperfusion_ml": None if severe is None else round(severe, 2),
        "hypoperfusion_intensity_ratio": None if hir is None else round(hir, 3),
        "affected_side": side,
        "target_mismatch": target,
        "profile": {"name": "DEFUSE-3" if profile == DEFUSE3 else "custom", **asdict(profile)},
        "rule": lesions.rule,
    }

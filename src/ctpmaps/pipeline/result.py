"""`StudyResult`: everything one pass of the chain made from one study, in memory."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..io.study import Study
from ..lesion import Lesions, Midline
from ..perfusion.maps import MapsResult

__all__ = ["StudyResult"]


@dataclass
class StudyResult:
    """What `run_study` (and `preprocess_study`, `predict_study`) produced.

    Attributes
    ----------
    study : Study
        The frames the maps were computed from (after motion correction and filtering).
    summary : dict
        What was read (source, dimensions, spacing, frames; no patient identifiers).
    problems : list of str
        Non-fatal problems found while reading.
    maps : MapsResult or None
        Maps in physical units, brain mask, input functions (None when no maps were made).
    motion : MotionResult or None
        Rigid motion per frame, when motion correction ran.
    lesions : Lesions or None
        Core, hypoperfusion, penumbra (None when lesions were not asked for).
    midline : Midline or None
    decision : dict or None
        `ctpmaps.lesion.decision_numbers`, or None when lesions were not made.
    caveats : list of dict
        Quality findings (`ctpmaps.pipeline.quality`): ``code``, ``severity``, ``message``.
    parameters : dict
        Everything the run depended on, as in ``run.json``.
    timings_s : dict
        Seconds per stage that ran (and ``total``).
    skipped : dict
        Stages not run and why.
    out : Path or None
        The output folder, once written.
    files : dict
        Name -> path of the main outputs (``report``, ``volumes_json``, ``run_json`` ...).
    """

    study: Study
    summary: dict[str, Any]
    problems: list[str] = field(default_factory=list)
    maps: MapsResult | None = None
    motion: Any = None
    lesions: Lesions | None = None
    midline: Midline | None = None
    decision: dict[str, Any] | None = None
    caveats: list[dict[str, str]] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    out: Path | None = None
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def brain(self) -> np.ndarray | None:
        """The brain mask of the maps (x, y, z) bool, or None."""
        return None if self.maps is None else self.maps.brain

    @property
    def report(self) -> Path | None:
        """Path of ``report.html`` when it was written."""
        return self.files.get("report")

    @property
    def decision_supported(self) -> bool:
        """False when a caveat says the maps cannot support a treatment decision."""
        return not any(c["severity"] == "withhold" for c in self.caveats)

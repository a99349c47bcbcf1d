"""Rigid motion correction of CT perfusion frames.

Modules: `geometry` (transforms, resampling), `screen` (which frames moved), `gauss_newton`
(the default registration, batched in torch), `elastix` (the seed's, in a child process),
`register` (the driver: `register_frames`, `register_study`) and `result` (`MotionResult`).
The motion report is written by `ctpmaps.io.motion` (``motion.csv``) and
`ctpmaps.report.figures.motion_figure` (``motion.png``).
"""

from __future__ import annotations

from .geometry import resample_rigid, rigid_matrix
from .register import DEFAULT_METHOD, METHODS, register_frames, register_study
from .result import MotionResult

__all__ = [
    "MotionResult",
    "METHODS",
    "DEFAULT_METHOD",
    "register_frames",
    "register_study",
    "rigid_matrix",
    "resample_rigid",
]

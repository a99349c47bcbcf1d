"""Preprocessing of CT perfusion frames: rigid motion correction and a guided bilateral filter."""

from __future__ import annotations

from .bilateral import (
    GUIDE_WINDOW_HU,
    SEED_SIGMAS,
    SIGMA_RANGE_HU,
    SIGMA_SPATIAL_MM,
    filter_study,
    guided_bilateral_filter,
)
from .motion import (
    MotionResult,
    register_frames,
    register_study,
    resample_rigid,
    rigid_matrix,
)

__all__ = [
    "guided_bilateral_filter",
    "SIGMA_SPATIAL_MM",
    "SIGMA_RANGE_HU",
    "SEED_SIGMAS",
    "GUIDE_WINDOW_HU",
    "filter_study",
    "MotionResult",
    "register_frames",
    "register_study",
    "rigid_matrix",
    "resample_rigid",
]

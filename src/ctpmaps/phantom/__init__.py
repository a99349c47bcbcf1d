"""The digital CTP phantom: a forward model from known perfusion maps to scanner frames.

It shares only physical constants and residue functions (`ctpmaps.physics`) with the
fitting code, so it is an independent truth to judge the fitters against.
"""

from __future__ import annotations

from .config import ACQUISITION_PRESETS, Acquisition, PhantomConfig, acquisition_preset
from .simulate import PhantomStudy, Truth, simulate_patient

__all__ = [
    "Acquisition",
    "ACQUISITION_PRESETS",
    "acquisition_preset",
    "PhantomConfig",
    "PhantomStudy",
    "Truth",
    "simulate_patient",
]

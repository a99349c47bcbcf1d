"""The digital CTP phantom: a forward model from known perfusion maps to scanner frames.

It shares only documented physical constants (`ctpmaps.physics`) with the fitting code:
its input functions, residue functions, convolution and truth definitions are its own
(`ctpmaps.phantom.forward`), so it is an independent truth to judge the fitters against.
The default model is ``heterogeneous``; ``PhantomConfig(model="classic")`` reproduces the
earlier phantom.
"""

from __future__ import annotations

from .config import (
    ACQUISITION_PRESETS,
    MODELS,
    Acquisition,
    HeterogeneousSettings,
    PhantomConfig,
    acquisition_preset,
)
from .simulate import PhantomStudy, Truth, simulate_patient

__all__ = [
    "Acquisition",
    "ACQUISITION_PRESETS",
    "acquisition_preset",
    "HeterogeneousSettings",
    "MODELS",
    "PhantomConfig",
    "PhantomStudy",
    "Truth",
    "simulate_patient",
]

"""ctpmaps: CT perfusion maps for acute ischemic stroke, model-based and data-driven."""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import CtpmapsError, FitError, InputError, WeightsError

__all__ = ["__version__", "CtpmapsError", "InputError", "FitError", "WeightsError"]

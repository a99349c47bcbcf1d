"""Perfusion maps from concentration curves: the SVD family and the box-shaped NLR."""

from __future__ import annotations

from .base import MAP_NAMES, UNITS, PerfusionFit, PerfusionMaps, PerfusionModel
from .boxnlr import BoxNLRFit, BoxNLRModel
from .concentration import baseline, bolus_arrival_frame, enhancement
from .svd import BSVDModel, OSVDModel, SSVDModel, SVDFit

__all__ = [
    "MAP_NAMES",
    "UNITS",
    "PerfusionMaps",
    "PerfusionModel",
    "PerfusionFit",
    "SSVDModel",
    "BSVDModel",
    "OSVDModel",
    "SVDFit",
    "BoxNLRModel",
    "BoxNLRFit",
    "bolus_arrival_frame",
    "baseline",
    "enhancement",
]

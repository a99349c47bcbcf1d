"""Perfusion maps from concentration curves: the SVD family and the box-shaped NLR."""

from __future__ import annotations

from .base import MAP_NAMES, UNITS, PerfusionFit, PerfusionMaps, PerfusionModel
from .boxnlr import BoxNLRFit, BoxNLRModel
from .concentration import baseline, bolus_arrival_frame, enhancement
from .maps import MapsResult, compute_maps
from .methods import DEFAULT_METHOD, METHODS, MODEL_METHODS, Method, method_info
from .svd import BSVDModel, OSVDModel, SSVDModel, SVDFit

__all__ = [
    "METHODS",
    "MODEL_METHODS",
    "DEFAULT_METHOD",
    "Method",
    "method_info",
    "MapsResult",
    "compute_maps",
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

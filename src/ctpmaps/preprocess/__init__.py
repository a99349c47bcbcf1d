"""Preprocessing of CT perfusion frames: rigid motion correction and a guided bilateral filter."""

from __future__ import annotations

from .bilateral import filter_study, guided_bilateral_filter

__all__ = ["guided_bilateral_filter", "filter_study"]

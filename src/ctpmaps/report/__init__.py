"""The HTML report of a study: maps, lesions, curves, motion, decision numbers and how
they were made, in one self-contained file."""

from __future__ import annotations

from .build import motion_summary, study_report
from .figures import (
    DISPLAY,
    colour_bar,
    colour_tile,
    curves_figure,
    display_slice,
    map_range,
    motion_figure,
    overlay_tile,
    slice_tiles,
)
from .html import ReportContent, render_html, write_report

__all__ = [
    "DISPLAY",
    "display_slice",
    "map_range",
    "colour_tile",
    "overlay_tile",
    "colour_bar",
    "slice_tiles",
    "curves_figure",
    "motion_figure",
    "ReportContent",
    "render_html",
    "write_report",
    "study_report",
    "motion_summary",
]

"""Lesions from perfusion maps: the midline, core, hypoperfusion, penumbra, volumes and the
decision numbers (mismatch, hypoperfusion intensity ratio, DEFUSE-3 target mismatch).

>>> from ctpmaps.lesion import fit_midline, hemisphere_labels, segment_lesions, decision_numbers
>>> # midline = fit_midline(unenhanced, study.spacing, study.affine)
>>> # hemis = hemisphere_labels(study.shape, study.affine, midline, mask=brain)
>>> # lesions = segment_lesions(maps, brain, hemis, voxel_ml, midline=midline, affine=affine)
>>> # decision_numbers(lesions)["target_mismatch"]
"""

from __future__ import annotations

from .decision import DEFUSE3, TargetMismatch, decision_numbers
from .midline import HEMISPHERES, Midline, fit_midline, hemisphere_labels
from .segment import (
    DEFAULT_CORE_RCBF,
    DEFAULT_HYPOPERFUSION_TMAX_S,
    RULES,
    LesionCriteria,
    Lesions,
    core_rcbf_for,
    hypoperfusion_tmax_for,
    median_in_brain,
    mirror_reference,
    relative_cbf,
    remove_small_clusters,
    resolve_criteria,
    segment_about_midline,
    segment_lesions,
    smoothed_for_thresholds,
)

__all__ = [
    "HEMISPHERES",
    "Midline",
    "fit_midline",
    "hemisphere_labels",
    "RULES",
    "DEFAULT_CORE_RCBF",
    "core_rcbf_for",
    "DEFAULT_HYPOPERFUSION_TMAX_S",
    "hypoperfusion_tmax_for",
    "resolve_criteria",
    "LesionCriteria",
    "Lesions",
    "segment_lesions",
    "segment_about_midline",
    "remove_small_clusters",
    "mirror_reference",
    "median_in_brain",
    "relative_cbf",
    "smoothed_for_thresholds",
    "TargetMismatch",
    "DEFUSE3",
    "decision_numbers",
]

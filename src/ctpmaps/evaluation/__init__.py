"""Evaluation: Dice, volume errors, map errors and the seed study's agreement statistics
over a cohort (Gava et al. 2023, Tables 1 and 2, Figures 4-7).

``overlap``   the project's one Dice, volumes and volume errors of masks
``agreement`` Pearson r, Bland-Altman with the coefficient of repeatability, ICC, Friedman,
              mean absolute difference, on paired volumes
``maps``      map MSE/PSNR on the normalised scale beside a constant predictor; physical
              errors per region
``cohort``    per-patient reduction and the cohort tables
"""

from __future__ import annotations

from .agreement import (
    AbsoluteDifference,
    BlandAltman,
    Correlation,
    GroupTest,
    Reliability,
    bland_altman,
    friedman,
    intraclass_correlation,
    mean_absolute_difference,
    pearson,
)
from .cohort import (
    LESIONS,
    CohortEvaluation,
    PatientData,
    PatientResult,
    SourceData,
    evaluate_cohort,
    evaluate_patient,
    source_pairs,
    summarise_cohort,
)
from .maps import (
    MapError,
    PhysicalError,
    map_error,
    normalise_map,
    physical_errors,
    psnr_db,
    regions_from_labels,
)
from .overlap import (
    MaskComparison,
    compare_masks,
    dice,
    volume_error_ml,
    volume_ml,
    voxel_volume_ml,
)

__all__ = [
    "dice",
    "volume_ml",
    "voxel_volume_ml",
    "volume_error_ml",
    "compare_masks",
    "MaskComparison",
    "pearson",
    "bland_altman",
    "intraclass_correlation",
    "friedman",
    "mean_absolute_difference",
    "Correlation",
    "BlandAltman",
    "Reliability",
    "GroupTest",
    "AbsoluteDifference",
    "normalise_map",
    "psnr_db",
    "map_error",
    "physical_errors",
    "regions_from_labels",
    "MapError",
    "PhysicalError",
    "LESIONS",
    "SourceData",
    "PatientData",
    "PatientResult",
    "CohortEvaluation",
    "source_pairs",
    "evaluate_patient",
    "summarise_cohort",
    "evaluate_cohort",
]

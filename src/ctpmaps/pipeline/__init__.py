"""The chain as a few functions, each one call from a study to its written outputs.

- `run_study`: preprocessing, maps (a deconvolution method or the U-Net), lesions,
  decision numbers, NIfTI/DICOM outputs and the HTML report (``ctpmaps run``; with
  ``lesions=False``, ``ctpmaps maps``);
- `preprocess_study`: motion correction and the filter on their own (``ctpmaps preprocess``);
- `predict_study`: the U-Net's maps alone (``ctpmaps predict``).

They share the stages (`ctpmaps.pipeline.preprocess.preprocess_frames`, the maps of
`ctpmaps.perfusion.compute_maps` or `ctpmaps.pipeline.predict.cnn_maps`) and one output
writer (`ctpmaps.pipeline.outputs`), and return a `StudyResult`.
"""

from __future__ import annotations

from .preprocess import applied_steps, preprocess_study, seed_filter
from .result import StudyResult
from .run import (
    STAGES,
    ChainOptions,
    analyse_study,
    default_filter_sigmas,
    predict_study,
    run_study,
)

__all__ = [
    "STAGES",
    "StudyResult",
    "run_study",
    "analyse_study",
    "ChainOptions",
    "preprocess_study",
    "predict_study",
    "applied_steps",
    "seed_filter",
    "default_filter_sigmas",
]

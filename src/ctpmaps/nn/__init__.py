"""The seed study's U-Net: trained on a cohort, predicts `PerfusionMaps` without an AIF.

``predict_maps(study, weights)`` maps a (preprocessed) study with one trained model per
map, on the pixel grid each model learned (`ctpmaps.nn.grid`);
``ctpmaps.nn.train.train(cohort, out, TrainConfig(...))`` trains one with a held-out test
set and patient-wise k-fold cross-validation (``ctpmaps train``; the function is not
re-exported here, so that ``ctpmaps.nn.train`` stays the package). Weights are
safetensors plus a JSON of metadata, checked on load (`load_model`); what the chain needs
from them: `filter_sigmas_of` (the filter to apply first), `validation_caveat` and
`LoadedModel.validation` (what the models were validated on). See ``docs/unet.md``.
"""

from __future__ import annotations

from .grid import training_pixel_mm
from .model_info import Validation, filter_sigmas_of, validation_caveat
from .normalise import (
    HU_WINDOW,
    INPUT_MEAN,
    INPUT_STD,
    TARGET_RANGES,
    denormalise_target,
    normalise_frames,
    normalise_target,
    subsample_frames,
)
from .predict import LoadedModel, default_weights_dir, find_weights, load_models, predict_maps
from .splits import make_splits, read_splits, write_splits
from .train import TrainConfig, evaluate
from .train.metrics import MapErrors, map_errors
from .unet import PRESETS, UNet, count_parameters
from .weights import load_model, read_metadata, save_model

__all__ = [
    "UNet",
    "PRESETS",
    "count_parameters",
    "HU_WINDOW",
    "INPUT_MEAN",
    "INPUT_STD",
    "TARGET_RANGES",
    "normalise_frames",
    "normalise_target",
    "denormalise_target",
    "subsample_frames",
    "make_splits",
    "read_splits",
    "write_splits",
    "TrainConfig",
    "evaluate",
    "MapErrors",
    "map_errors",
    "LoadedModel",
    "Validation",
    "filter_sigmas_of",
    "validation_caveat",
    "training_pixel_mm",
    "predict_maps",
    "load_models",
    "find_weights",
    "default_weights_dir",
    "load_model",
    "save_model",
    "read_metadata",
]

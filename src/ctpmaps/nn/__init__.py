"""The seed study's U-Net: trained on a cohort, predicts `PerfusionMaps` without an AIF.

``predict_maps(study, weights)`` maps a (preprocessed) study with one trained model per
map, on the pixel grid each model learned (`ctpmaps.nn.grid`);
``ctpmaps.nn.train.train(cohort, out, TrainConfig(...))`` trains one with a held-out test
set and patient-wise k-fold cross-validation (``ctpmaps train``; the function is not
re-exported here, so that ``ctpmaps.nn.train`` stays the package). Weights are
safetensors plus a JSON of metadata, checked on load (`load_model`); what the chain needs
from them: `filter_sigmas_of` (the filter to apply first), `validation_caveat` and
`LoadedModel.validation` (what the models were validated on). See ``docs/unet.md``.

Names are imported when first used (PEP 562): ``ctpmaps.nn.normalise`` (the input window,
`TARGET_RANGES`, the target scale) needs numpy only, so the evaluation reads the U-Net's
target ranges without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> submodule that defines it.
_WHERE = {
    "training_pixel_mm": "grid",
    "Validation": "model_info",
    "filter_sigmas_of": "model_info",
    "validation_caveat": "model_info",
    "HU_WINDOW": "normalise",
    "INPUT_MEAN": "normalise",
    "INPUT_STD": "normalise",
    "TARGET_RANGES": "normalise",
    "denormalise_target": "normalise",
    "normalise_frames": "normalise",
    "normalise_target": "normalise",
    "subsample_frames": "normalise",
    "LoadedModel": "predict",
    "default_weights_dir": "predict",
    "ensembles": "predict",
    "find_weights": "predict",
    "load_models": "predict",
    "predict_maps": "predict",
    "make_splits": "splits",
    "read_splits": "splits",
    "write_splits": "splits",
    "TrainConfig": "train",
    "evaluate": "train",
    "MapErrors": "train.metrics",
    "map_errors": "train.metrics",
    "PRESETS": "unet",
    "UNet": "unet",
    "count_parameters": "unet",
    "load_model": "weights",
    "read_metadata": "weights",
    "save_model": "weights",
}

__all__ = list(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])

"""The seed study's U-Net: trained on a cohort, predicts `PerfusionMaps` without an AIF.

``predict_maps(study, weights)`` maps a study with one trained model per map;
``train(...)`` trains one with patient-wise cross-validation (``ctpmaps train``).
"""

from __future__ import annotations

from .normalise import TARGET_RANGES, subsample_frames
from .unet import PRESETS, UNet

__all__ = ["UNet", "PRESETS", "TARGET_RANGES", "subsample_frames"]

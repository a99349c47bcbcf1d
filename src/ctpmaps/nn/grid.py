"""The pixel grid a model learned, and slices resampled onto it and back.

A U-Net's filters and receptive field are counted in pixels: a network trained on
1.95 mm pixels (128 x 128 over 250 mm) and applied to 0.49 mm pixels (512 x 512) sees
structures four times larger than it learned and a brain four times wider than its
receptive field. The demo weights then gave a TTP ring near the brain's edge and blocky CBF
(issue 13). So `predict_maps` brings each slice onto the model's training pixel size
(`training_pixel_mm`), runs the network there and brings the map back:

- down: area averaging of the HU frames (each coarse pixel the mean of the fine pixels it
  covers: anti-aliased, and what a coarser reconstruction or `SliceDataset`'s
  down-sampling gives), then the input normalisation;
- up: bicubic interpolation of the network's output (continuous first derivatives: no
  blocks), weighted by the brain fraction of each coarse pixel when a brain mask is given,
  so that voxels at the brain's edge take brain values rather than a mix with the
  background (normalised convolution, Knutsson & Westin 1993); the mask itself stays at
  full resolution.

Grids within `GRID_TOLERANCE` of the model's are used as they are.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "GRID_TOLERANCE",
    "ASSUMED_FOV_MM",
    "training_pixel_mm",
    "grid_shape",
    "downsample_slices",
    "upsample_slices",
    "brain_fraction",
]

log = logging.getLogger(__name__)

#: Relative difference of pixel size below which a study is used on its own grid.
GRID_TOLERANCE = 0.1
#: Field of view assumed for models that record only their matrix (the seed's and the
#: phantom's 250 mm).
ASSUMED_FOV_MM = 250.0


def _recorded_size(meta: dict[str, Any]) -> int | None:
    """Longer side of the training slices an old model's JSON implies: its best epoch's
    size, else its phantom cohort's matrix."""
    metrics = meta.get("metrics") or {}
    cv, best = metrics.get("cv"), metrics.get("best_fold")
    if isinstance(cv, list) and isinstance(best, int) and 0 <= best < len(cv):
        size = cv[best].get("size")
        if size:
            return int(size)
    matrix = (meta.get("cohort") or {}).get("phantom_matrix")
    return int(matrix) if matrix else None


def training_pixel_mm(meta: dict[str, Any], source: str = "model") -> tuple[float, float] | None:
    """Pixel size ``(x, y)`` in mm of the slices a model was trained on.

    Parameters
    ----------
    meta : dict
        The model's metadata (`ctpmaps.nn.weights.read_metadata`).
    source : str
        Name of the model file, for log lines.

    Returns
    -------
    (float, float) or None
        ``meta["pixel_mm"]`` when recorded. For older models, inferred from the size of the
        training slices the JSON records (best epoch's size, else the phantom cohort's
        matrix) over `ASSUMED_FOV_MM`, with a log line; None when nothing says (the study is
        then used on its own grid, with a warning).
    """
    if meta.get("pixel_mm"):
        px, py = (float(v) for v in meta["pixel_mm"])
        return px, py
    size = _recorded_size(meta)
    if size is None:
        log.warning(
            "%s records no training pixel size or matrix: the study is used on its own grid",
            source,
        )
        return None
    pixel = ASSUMED_FOV_MM / size
    log.info(
        "%s records no training pixel size: assuming %.3f mm (%d x %d training slices over "
        "a %.0f mm field of view, from its cohort and metrics)",
        source,
        pixel,
        size,
        size,
        ASSUMED_FOV_MM,
    )
    return pixel, pixel


def grid_shape(
    shape_xy: tuple[int, int], spacing_xy: tuple[float, float], pixel_xy: tuple[float, float]
) -> tuple[int, int] | None:
    """Matrix ``(x, y)`` covering the same field of view with the model's pixels.

    Returns None when every axis is within `GRID_TOLERANCE` of the model's pixel size (no
    resampling needed).

    Examples
    --------
    >>> grid_shape((512, 512), (0.488, 0.488), (1.953, 1.953))
    (128, 128)
    >>> grid_shape((128, 128), (1.95, 1.95), (1.953, 1.953)) is None
    True
    """
    ratios = [s / p for s, p in zip(spacing_xy, pixel_xy, strict=True)]
    if all(abs(r - 1.0) <= GRID_TOLERANCE for r in ratios):
        return None
    return tuple(max(1, round(n * r)) for n, r in zip(shape_xy, ratios, strict=True))  # type: ignore[return-value]


def downsample_slices(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Slices ``(N, C, H, W)`` onto ``hw``: area averaging where no axis grows
    (anti-aliased down-sampling), else bilinear interpolation. float32 out."""
    if hw[0] <= x.shape[-2] and hw[1] <= x.shape[-1]:
        return F.interpolate(x.float(), size=tuple(hw), mode="area")
    return F.interpolate(x.float(), size=tuple(hw), mode="bilinear", align_corners=False)


def upsample_slices(
    y: torch.Tensor, hw: tuple[int, int], weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Maps ``(N, C, h, w)`` on [0, 1] back onto ``hw`` by bicubic interpolation.

    Parameters
    ----------
    y : Tensor, shape (N, C, h, w)
        Network outputs on the model's grid.
    hw : (int, int)
        Height and width of the study's slices.
    weight : Tensor, shape (N, 1, h, w), optional
        Brain fraction of each coarse pixel: the map is interpolated as
        ``up(y * weight) / up(weight)`` where ``up(weight)`` exceeds 1 %, so that brain
        voxels at the edge are not pulled towards the background; plain interpolation
        elsewhere.

    Returns
    -------
    Tensor, shape (N, C, *hw), float32, clipped to [0, 1] (bicubic overshoot).
    """

    def up(t: torch.Tensor) -> torch.Tensor:
        return F.interpolate(t.float(), size=tuple(hw), mode="bicubic", align_corners=False)

    out = up(y)
    if weight is not None:
        w = up(weight).clamp_min(0.0)
        inside = w > 0.01
        out = torch.where(inside, up(y * weight) / w.clamp_min(0.01), out)
    return out.clamp_(0.0, 1.0)


def brain_fraction(mask_slices: np.ndarray, hw: tuple[int, int]) -> torch.Tensor:
    """Brain masks ``(z, H, W)`` -> fraction of brain in each pixel of ``hw``,
    ``(z, 1, h, w)`` float32."""
    m = torch.from_numpy(np.ascontiguousarray(mask_slices, dtype=np.float32))[:, None]
    return downsample_slices(m, hw)

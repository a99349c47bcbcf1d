"""Error of a network on a dataset, on the normalised [0, 1] scale of the maps."""

from __future__ import annotations

import math
from typing import Any

import torch

from ..dataset import SliceDataset

__all__ = ["psnr", "evaluate"]


def psnr(mse: float) -> float:
    """Peak signal-to-noise ratio in dB of maps on [0, 1]: ``10 log10(1 / mse)``."""
    return float(10.0 * math.log10(1.0 / mse)) if mse > 0 else float("inf")


@torch.no_grad()
def evaluate(
    net: torch.nn.Module, ds: SliceDataset, *, device: torch.device | str = "cpu", batch: int = 8
) -> dict[str, Any]:
    """MSE of a network on a dataset, on the normalised [0, 1] scale.

    Returns
    -------
    dict
        ``mse`` (whole slice, the seed's metric), ``psnr`` (dB), ``mse_brain`` (inside the
        brain mask), ``mae_brain`` (normalised), ``n_slices``.
    """
    net.eval()
    device = torch.device(device)
    h, w = ds.hw
    sq, n, sq_b, ab_b, n_b = 0.0, 0, 0.0, 0.0, 0.0
    amp = device.type == "cuda"
    for start in range(0, len(ds), batch):
        x = ds.inputs[start : start + batch].float().to(device)
        y = ds.targets[start : start + batch].to(device)[..., :h, :w]
        m = ds.masks[start : start + batch].to(device)[..., :h, :w]
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            pred = net(x)
        err = pred.float()[..., :h, :w] - y
        sq += float((err**2).sum())
        n += err.numel()
        sq_b += float((err[m] ** 2).sum())
        ab_b += float(err[m].abs().sum())
        n_b += float(m.sum())
    mse = sq / max(n, 1)
    mse_b = sq_b / n_b if n_b else float("nan")
    return {
        "mse": mse,
        "psnr": psnr(mse),
        "mse_brain": mse_b,
        "mae_brain": ab_b / n_b if n_b else float("nan"),
        "n_slices": len(ds),
    }

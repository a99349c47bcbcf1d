"""Error of predicted maps, over the slice and inside the brain, beside a constant predictor.

All on the normalised [0, 1] scale of the maps (`ctpmaps.nn.normalise`). The slice-wide MSE
is the seed's metric; most of a slice is background, where every predictor scores well, so
the same errors are reported inside the brain mask, and beside those of a **constant
predictor**: the reference's mean inside the brain (over every slice evaluated), 0 outside.
A network that does not beat it inside the brain has learned the brain's outline, not its
perfusion.
"""

from __future__ import annotations

import math
from dataclasses import astuple, dataclass, fields
from typing import Any

import numpy as np
import torch

from ..dataset import SliceDataset

__all__ = ["psnr", "MapErrors", "map_errors", "evaluate"]


def psnr(mse: float) -> float:
    """Peak signal-to-noise ratio in dB of maps on [0, 1]: ``10 log10(1 / mse)``."""
    if math.isnan(mse):
        return math.nan
    return float(10.0 * math.log10(1.0 / mse)) if mse > 0 else float("inf")


@dataclass
class MapErrors:
    """Running sums of the errors of predicted maps against a reference.

    `add` takes batches (numpy arrays or torch tensors of one shape); `result` gives the
    metrics. Sums, not means, so that batches and processes (`as_list`, `from_list`, summed
    across ``torchrun`` processes) combine exactly.
    """

    n: float = 0.0  # pixels
    sq: float = 0.0  # sum of squared errors
    n_brain: float = 0.0
    sq_brain: float = 0.0
    abs_brain: float = 0.0
    ref_brain: float = 0.0  # sum of the reference inside the brain
    ref2_brain: float = 0.0  # sum of its squares
    ref2_out: float = 0.0  # sum of squares of the reference outside the brain

    def add(self, pred, ref, mask) -> MapErrors:
        """Add a batch: ``pred`` and ``ref`` on [0, 1], ``mask`` bool (brain), one shape.

        Masks multiply rather than index, and torch sums are read back once per batch (one
        device synchronisation on CUDA)."""
        if not torch.is_tensor(pred):  # numpy: sums in float64
            pred, ref = np.asarray(pred, np.float64), np.asarray(ref, np.float64)
        err = pred - ref
        m = mask.to(err.dtype) if torch.is_tensor(mask) else np.asarray(mask, err.dtype)
        out = 1 - m
        ref_in = ref * m
        sums = [
            (err**2).sum(),
            m.sum(),
            (err**2 * m).sum(),
            (abs(err) * m).sum(),
            ref_in.sum(),
            (ref_in**2).sum(),
            ((ref * out) ** 2).sum(),
        ]
        if torch.is_tensor(err):
            sums = torch.stack([v.to(torch.float64) for v in sums]).tolist()
        size = err.numel() if torch.is_tensor(err) else err.size
        for name, value in zip((f.name for f in fields(self)), [size, *sums], strict=True):
            setattr(self, name, getattr(self, name) + float(value))
        return self

    def as_list(self) -> list[float]:
        """The sums, in field order."""
        return list(astuple(self))

    @classmethod
    def from_list(cls, values: list[float]) -> MapErrors:
        """Inverse of `as_list`."""
        return cls(*(float(v) for v in values))

    def result(self) -> dict[str, float]:
        """``mse``, ``psnr`` (dB) over the slice; ``mse_brain``, ``psnr_brain``,
        ``mae_brain`` inside the brain; the constant predictor's ``const_value`` (the
        reference's brain mean), ``const_mse``, ``const_mse_brain`` and their PSNRs. NaN
        where there is nothing to average."""
        nan = math.nan
        mse = self.sq / self.n if self.n else nan
        nb = self.n_brain
        c = self.ref_brain / nb if nb else nan
        # sum over the brain of (c - ref)^2, and outside it of ref^2 (the constant is 0 there)
        const_sq_brain = self.ref2_brain - 2 * c * self.ref_brain + c * c * nb if nb else nan
        const_sq_brain = max(const_sq_brain, 0.0) if nb else nan
        mse_b = self.sq_brain / nb if nb else nan
        const_b = const_sq_brain / nb if nb else nan
        const = (const_sq_brain + self.ref2_out) / self.n if self.n and nb else nan
        return {
            "mse": mse,
            "psnr": psnr(mse),
            "mse_brain": mse_b,
            "psnr_brain": psnr(mse_b),
            "mae_brain": self.abs_brain / nb if nb else nan,
            "const_value": c,
            "const_mse": const,
            "const_psnr": psnr(const),
            "const_mse_brain": const_b,
            "const_psnr_brain": psnr(const_b),
        }


def map_errors(pred: np.ndarray, ref: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """`MapErrors.result` of one set of maps on [0, 1] (any one shape) and a brain mask.

    Examples
    --------
    >>> import numpy as np
    >>> ref = np.array([0.2, 0.4, 0.0, 0.0]); mask = np.array([True, True, False, False])
    >>> r = map_errors(np.array([0.3, 0.3, 0.0, 0.1]), ref, mask)
    >>> round(r["mse"], 4), round(r["mse_brain"], 4), round(r["const_mse_brain"], 4)
    (0.0075, 0.01, 0.01)
    """
    pred, ref, mask = np.asarray(pred), np.asarray(ref), np.asarray(mask, dtype=bool)
    if not pred.shape == ref.shape == mask.shape:
        raise ValueError(f"shapes differ: {pred.shape}, {ref.shape}, {mask.shape}")
    return MapErrors().add(pred, ref, mask).result()


@torch.no_grad()
def evaluate(
    net: torch.nn.Module, ds: SliceDataset, *, device: torch.device | str = "cpu", batch: int = 8
) -> dict[str, Any]:
    """Errors of a network on a dataset, on the normalised [0, 1] scale (padding excluded).

    Returns
    -------
    dict
        `MapErrors.result` (over the slice, inside the brain, and the constant predictor's)
        and ``n_slices``.
    """
    net.eval()
    device = torch.device(device)
    h, w = ds.hw
    sums = MapErrors()
    for start in range(0, len(ds), batch):
        x = ds.inputs[start : start + batch].float().to(device)
        y = ds.targets[start : start + batch][..., :h, :w].to(device)
        m = ds.masks[start : start + batch][..., :h, :w].to(device)
        with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
            pred = net(x)
        sums.add(pred.float()[..., :h, :w], y, m)
    return {**sums.result(), "n_slices": len(ds)}

"""Training the U-Net with patient-wise cross-validation (``ctpmaps train``).

The seed's recipe, every number configurable (`TrainConfig`): MSE loss, Adam (lr 1e-5,
betas 0.9/0.999), batch 8, learning rate halved when the validation loss plateaus,
pre-training on slices down-sampled to 128 x 128 (250 epochs) then fine-tuning at full
resolution (50 epochs). A held-out test set and k folds are drawn patient-wise
(`ctpmaps.nn.splits`); each fold trains one model and keeps its best epoch by validation
MSE. The fold with the lowest validation MSE becomes the run's model, evaluated on the
test set.

Layout of ``OUT``::

    config.json                the settings (a resumed run must match them)
    splits.json                test patients and folds
    fold-<i>/history.csv       per epoch: stage, size, lr, train and validation MSE, PSNR,
                               validation MSE inside the brain, seconds
    fold-<i>/learning_curve.png
    fold-<i>/best.{safetensors,json}        best epoch (model format, `weights.py`)
    fold-<i>/checkpoint.{safetensors,json}  last epoch (model + optimiser + scheduler)
    <target>.{safetensors,json}  the run's model, with CV and test metrics
    cv_table.md, cv_table.csv  train/validation MSE and PSNR per fold, mean and SD
    test_metrics.json          normalised MSE, PSNR and physical errors on the test set

Interrupted runs resume from the last checkpoint of the unfinished fold. Shuffling uses a
generator seeded by (seed, fold, epoch), so a resumed run follows the same path as an
uninterrupted one; on CPU two runs with the same seed give identical weights.

Runs on CUDA when present (mixed precision with `torch.autocast`) and on several
processes with ``torchrun`` (DistributedDataParallel; gloo on CPU, nccl on CUDA;
`DistributedSampler` shards the training slices; rank 0 writes every file).
"""

from __future__ import annotations

from .config import TrainConfig
from .cv import train
from .history import HISTORY_FIELDS, plot_learning_curve, write_cv_table
from .metrics import evaluate, psnr

__all__ = [
    "TrainConfig",
    "train",
    "evaluate",
    "psnr",
    "HISTORY_FIELDS",
    "plot_learning_curve",
    "write_cv_table",
]

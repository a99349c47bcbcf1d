"""Training on NLR targets (as the seed) or on the phantom's true maps, end to end, and the
script that puts the two side by side (``benchmarks/train_unet.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from ctpmaps.io.nifti import read_nifti_study
from ctpmaps.nn import filter_sigmas_of, load_models, predict_maps
from ctpmaps.preprocess.bilateral import filter_study

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def train_unet():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import train_unet

        yield train_unet
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.mark.parametrize("source", ["nlr", "truth"])
def test_both_target_sources_train_predict_and_score(source, nlr_cohort, tmp_path, train_unet,
                                                     capsys):  # fmt: skip
    out = tmp_path / source
    args = [
        str(nlr_cohort), str(out), "--target-source", source, "--maps", "cbf", "ttp",
        "--features", "4,4,8,8,8", "--frames", "5", "--epochs-pre", "1", "--epochs-fine", "1",
        "--pre-size", "64", "--folds", "2", "--threads", "1", "--cache-dir",
        str(tmp_path.parent / "cache"),
    ]  # fmt: skip
    assert train_unet.main(args) == 0
    models = load_models([out / "cbf" / "cbf", out / "ttp" / "ttp"])
    for m in models:
        assert m.meta["target_source"] == source and m.meta["validated_on"] == "phantom"
        test_metrics = m.meta["metrics"]["test"]
        assert test_metrics["mse_brain"] > 0 and test_metrics["const_mse_brain"] >= 0
    # a held-out patient through the inference path: filtered as the training frames were
    (test,) = m.meta["metrics"]["test"]["patients"]
    study = read_nifti_study(nlr_cohort / test / "ctp.nii.gz")
    spatial, range_hu = filter_sigmas_of(models)
    maps = predict_maps(filter_study(study, sigma_spatial_mm=spatial, sigma_range_hu=range_hu),
                        models)  # fmt: skip
    assert np.isfinite(maps.cbf).all() and np.isfinite(maps.ttp).all()
    printed = capsys.readouterr().out
    table = (out / "scores.md").read_text()
    for ref in ("truth", "nlr"):  # scored against both references, and NLR against the truth
        assert f"| CBF | {ref} | U-Net ({source} targets) |" in table
    assert "| CBF | truth | NLR |" in table and "| TTP | truth | NLR |" in table
    assert table.splitlines()[-1] in printed

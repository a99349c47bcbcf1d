"""Inputs on one input-function scale: a denser bolus gives the network the same inputs,
the model records the scale, inference applies it, a study without a bolus is refused."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file
from typer.testing import CliRunner

from ctpmaps.cli import app
from ctpmaps.errors import FitError, WeightsError
from ctpmaps.io.nifti import read_nifti_study
from ctpmaps.nn.model_info import enhancement_reference
from ctpmaps.nn.normalise import subsample_frames
from ctpmaps.nn.predict import load_models, predict_maps
from ctpmaps.nn.scale import REFERENCE_AREA_HU_S, input_scale, scale_enhancement, scaled
from ctpmaps.nn.unet import UNet
from ctpmaps.nn.weights import read_metadata, save_model
from ctpmaps.pipeline.predict import cnn_maps

FEATS = (4, 4, 8, 8, 8)


@pytest.fixture(scope="module")
def studies(nlr_cohort):
    """A phantom study and the same study with twice its enhancement (a denser bolus: every
    curve, arteries, veins and tissue, twice as high over the same baseline)."""
    study = read_nifti_study(nlr_cohort / "MOL-001" / "ctp.nii.gz")
    scale = input_scale(study)
    frames = study.frames.astype(np.float32)
    base = frames[..., : scale.baseline_frames].mean(axis=-1, keepdims=True)
    denser = dataclasses.replace(study, frames=base + 2 * (frames - base))
    return study, denser, scale


def _model(folder, target="cbv", n_frames=5, reference=REFERENCE_AREA_HU_S):
    torch.manual_seed(0)
    net = UNet(n_frames, features=FEATS).eval()
    idx = subsample_frames(20, n_frames)
    return save_model(
        folder / target, net, target=target, frame_indices=idx.tolist(),
        frame_times_s=(idx * 2.0).tolist(), enhancement_scale=reference,
    )[1]  # fmt: skip


def test_scale_enhancement_by_hand():
    frames = np.array([[[10.0, 14.0, 40.0, 20.0]], [[-5.0, -3.0, 0.0, -4.0]]])
    out = scale_enhancement(frames, 2, 3.0)
    # baselines 12 and -4: 12 + 3 (x - 12) and -4 + 3 (x + 4)
    np.testing.assert_allclose(out, [[[6.0, 18.0, 96.0, 36.0]], [[-7.0, -1.0, 8.0, -4.0]]])
    assert out.dtype == np.float32
    with pytest.raises(ValueError, match="n_baseline"):
        scale_enhancement(frames, 5, 1.0)
    with pytest.raises(ValueError, match="factor"):
        scale_enhancement(frames, 2, 0.0)


def test_a_denser_bolus_gives_the_network_the_same_inputs(studies):
    study, denser, scale = studies
    twice = input_scale(denser)
    assert twice.baseline_frames == scale.baseline_frames
    assert twice.area_hu_s / scale.area_hu_s == pytest.approx(2.0, rel=1e-3)
    a, b = scaled(study, scale).frames, scaled(denser, twice).frames
    np.testing.assert_allclose(a, b, atol=0.05)
    # and the enhancement is now on the reference's scale: the factor is reference / area
    enh = a[..., -1] - a[..., : scale.baseline_frames].mean(axis=-1)
    raw = study.frames[..., -1] - study.frames[..., : scale.baseline_frames].mean(axis=-1)
    np.testing.assert_allclose(enh, raw * REFERENCE_AREA_HU_S / scale.area_hu_s, atol=0.05)


def test_a_study_without_a_bolus_is_refused(studies):
    study = studies[0]
    flat = dataclasses.replace(study, frames=np.repeat(study.frames[..., :1], 20, axis=-1))
    with pytest.raises(FitError):
        input_scale(flat)


def test_the_model_records_its_scale_and_a_bad_record_is_refused(tmp_path):
    meta_path = _model(tmp_path)
    meta = read_metadata(meta_path)
    assert enhancement_reference(meta) == REFERENCE_AREA_HU_S
    assert meta["enhancement_scale"]["reference_area_hu_s"] == REFERENCE_AREA_HU_S
    assert enhancement_reference(read_metadata(_model(tmp_path / "b", reference=None))) is None
    meta["enhancement_scale"] = {"reference_area_hu_s": -1}
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(WeightsError, match="enhancement_scale"):
        read_metadata(meta_path)


def test_inference_scales_the_study_as_the_model_was_trained(tmp_path, studies):
    study, denser, scale = studies
    scaled_model = load_models([_model(tmp_path / "s")])
    plain_model = load_models([_model(tmp_path / "p", reference=None)])
    a, b = (predict_maps(s, scaled_model).cbv for s in (study, denser))
    np.testing.assert_allclose(a, b, atol=1e-3)  # the bolus's amplitude does not reach it
    a, b = (predict_maps(s, plain_model).cbv for s in (study, denser))
    assert np.max(np.abs(a - b)) > 0.01  # without the scale, it does
    # the chain's record: the study's input function
    result = cnn_maps(study, scaled_model, mask=False)
    record = result.parameters["input_function"]
    assert record["area_hu_s"] == pytest.approx(scale.area_hu_s, abs=0.1)
    assert record["baseline_frames"] == scale.baseline_frames == result.baseline_frames
    assert result.parameters["models"]["cbv"]["enhancement_scale_hu_s"] == REFERENCE_AREA_HU_S
    assert cnn_maps(study, plain_model, mask=False).parameters["input_function"] is None


def test_training_with_the_scale_records_it_and_caches_the_scaled_frames(nlr_cohort, tmp_path):
    out, cache = tmp_path / "run", tmp_path / "cache"
    args = ["train", str(nlr_cohort), str(out), "--target", "cbv", "--target-source", "truth",
            "--features", "4,4,8,8,8", "--frames", "5", "--epochs-pre", "1", "--epochs-fine",
            "0", "--pre-size", "32", "--folds", "2", "--enhancement-scale", "--threads", "1",
            "--cache-dir", str(cache)]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert json.loads((out / "config.json").read_text())["enhancement_scale"] is True
    assert enhancement_reference(read_metadata(out / "cbv")) == REFERENCE_AREA_HU_S
    # every patient's cached inputs carry the area they were scaled by, the study's own
    entry = load_file(next((cache / "MOL-001").glob("inputs-*.safetensors")))
    study = read_nifti_study(nlr_cohort / "MOL-001" / "ctp.nii.gz")
    from ctpmaps.preprocess.bilateral import filter_study

    own = input_scale(filter_study(study, sigma_spatial_mm=3.0, sigma_range_hu=20.0))
    np.testing.assert_allclose(entry["input_scale"], [own.area_hu_s, own.baseline_frames])

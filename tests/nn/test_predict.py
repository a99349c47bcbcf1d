"""Inference: PerfusionMaps in physical units, missing maps NaN, outputs, weights lookup."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ctpmaps.cli import app
from ctpmaps.errors import InputError, WeightsError
from ctpmaps.io.nifti import read_nifti_study
from ctpmaps.io.study import Study
from ctpmaps.nn.normalise import frames_to_slices, subsample_frames
from ctpmaps.nn.predict import (
    WEIGHTS_ENV,
    find_weights,
    load_models,
    predict_maps,
)
from ctpmaps.nn.unet import UNet
from ctpmaps.nn.weights import save_model
from ctpmaps.perfusion.base import MAP_NAMES

FEATS = (4, 4, 8, 8, 8)


def _model(folder, target, n_frames=5, seed=0):
    torch.manual_seed(seed)
    net = UNet(n_frames, features=FEATS).eval()
    idx = subsample_frames(20, n_frames)
    save_model(
        folder / target, net, target=target, frame_indices=idx.tolist(),
        frame_times_s=(idx * 2.0).tolist(),
    )  # fmt: skip
    return net


@pytest.fixture(scope="module")
def study(tiny_cohort):
    return read_nifti_study(tiny_cohort / "MOL-001" / "ctp.nii.gz")


def test_maps_in_physical_units_and_missing_maps_nan(tmp_path, study):
    net = _model(tmp_path, "cbv")
    _model(tmp_path, "ttp", seed=1)
    maps = predict_maps(study, tmp_path, device="cpu")
    assert maps.method == "unet" and maps.shape == study.shape
    for name in ("cbf", "mtt", "tmax", "delay"):
        assert np.isnan(getattr(maps, name)).all(), name
    assert 0 <= maps.cbv.min() and maps.cbv.max() <= 10 and maps.cbv.dtype == np.float32
    assert 0 <= maps.ttp.min() and maps.ttp.max() <= 50
    # slice z=3 by hand: (T, H=y, W=x) in, 0-10 mL/100 g out, back to (x, y)
    x = torch.from_numpy(frames_to_slices(study.frames, subsample_frames(20, 5)))[3:4]
    with torch.no_grad():
        expected = net(x)[0, 0].numpy().T * 10.0
    np.testing.assert_allclose(maps.cbv[:, :, 3], expected, rtol=1e-5, atol=1e-5)


def test_sizes_not_multiple_of_16_are_padded(tmp_path, study):
    _model(tmp_path, "cbf")
    crop = Study(study.frames[:50, :37], study.affine, study.times)
    maps = predict_maps(crop, tmp_path)
    assert maps.cbf.shape == (50, 37, 8) and np.isfinite(maps.cbf).all()


def test_mask_sets_nan_outside(tmp_path, study):
    _model(tmp_path, "cbv")
    mask = np.zeros(study.shape, bool)
    mask[10:20, 10:20] = True
    maps = predict_maps(study, tmp_path / "cbv.json", mask=mask)
    assert np.isfinite(maps.cbv[mask]).all() and np.isnan(maps.cbv[~mask]).all()
    with pytest.raises(InputError, match="mask"):
        predict_maps(study, tmp_path, mask=mask[:-1])


def test_too_few_frames_and_duplicate_models(tmp_path, study):
    _model(tmp_path / "a", "cbv", n_frames=5)
    few = Study(study.frames[..., :4], study.affine, study.times[:4])
    with pytest.raises(InputError, match="needs at least 5"):
        predict_maps(few, tmp_path / "a")
    _model(tmp_path / "b", "cbv")
    with pytest.raises(WeightsError, match="two models for cbv"):
        load_models([tmp_path / "a", tmp_path / "b" / "cbv.safetensors"])


def test_weights_lookup(tmp_path, monkeypatch):
    with pytest.raises(WeightsError, match="no such weights"):
        find_weights(tmp_path / "nothing.safetensors")
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsError, match="no model files"):
        find_weights(tmp_path / "empty")
    _model(tmp_path / "env", "ttp")
    (tmp_path / "env" / "notes.json").write_text("{}")  # ignored: not a model
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "env"))
    assert find_weights() == [tmp_path / "env" / "ttp.safetensors"]


def test_cli_predict(tmp_path, tiny_cohort):
    _model(tmp_path / "w", "cbv")
    _model(tmp_path / "w", "cbf", seed=2)
    out = tmp_path / "maps"
    src = str(tiny_cohort / "MOL-002" / "ctp.nii.gz")
    res = CliRunner().invoke(app, ["predict", src, str(out), "--weights", str(tmp_path / "w")])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "brain_mask.nii.gz", "cbf.nii.gz", "cbv.nii.gz", "run.json",
    ]  # fmt: skip
    run = json.loads((out / "run.json").read_text())
    assert sorted(run["results"]["maps"]) == ["cbf", "cbv"]
    assert run["results"]["maps"]["cbv"]["unit"] == "mL/100 g"
    assert run["parameters"]["maps"]["models"]["cbv"]["file"].endswith("cbv.safetensors")
    assert "CBV" in res.output and "mL/100 g" in res.output
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "cbv.json").write_text('{"format": "ctpmaps-unet"}')
    (bad / "cbv.safetensors").write_bytes(b"x")
    res = CliRunner().invoke(app, ["predict", src, str(tmp_path / "m2"), "-w", str(bad)])
    assert res.exit_code == 4 and "cbv.json" in res.output
    assert not (tmp_path / "m2").exists()


def test_cli_train_bad_cohort_exit_code(tmp_path):
    res = CliRunner().invoke(app, ["train", str(tmp_path), str(tmp_path / "run")])
    assert res.exit_code == 2 and "no patients" in " ".join(res.output.split())


def test_every_map_name_is_a_target():
    from ctpmaps.nn.normalise import TARGET_RANGES

    assert set(TARGET_RANGES) == set(MAP_NAMES)


def test_shipped_demo_weights_load_and_predict(monkeypatch):
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    models = load_models()
    assert sorted(m.target for m in models) == ["cbf", "cbv", "ttp"]
    total = 0
    for m in models:
        assert m.meta["n_frames"] == 22 and m.meta["target_source"] == "nlr"
        assert m.meta["cohort"]["phantom_seed"] == 2024
        assert m.meta["metrics"]["test"]["mse"] < {"cbv": 0.01, "cbf": 0.01, "ttp": 0.017}[m.target]
        total += m.path.stat().st_size + m.path.with_suffix(".json").stat().st_size
    assert total < 20e6
    rng = np.random.default_rng(0)
    frames = rng.normal(35, 5, (32, 32, 2, 89)).astype(np.float32)
    maps = predict_maps(Study(frames, np.eye(4), np.arange(89) * 0.5), models, device="cpu")
    assert np.isfinite(maps.cbv).all() and np.isnan(maps.mtt).all()
    assert 0 <= np.min(maps.ttp) and np.max(maps.ttp) <= 50

"""Model files: safetensors + JSON, checked on load; checkpoints without pickle."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from ctpmaps.errors import WeightsError
from ctpmaps.nn.unet import UNet
from ctpmaps.nn.weights import (
    load_checkpoint,
    load_model,
    read_metadata,
    save_checkpoint,
    save_model,
)

FEATS = (4, 4, 8, 8, 8)


def _saved(tmp_path, **kw):
    torch.manual_seed(0)
    net = UNet(3, features=FEATS).eval()
    save_model(
        tmp_path / "cbv",
        net,
        target="cbv",
        frame_indices=[0, 5, 10],
        frame_times_s=[0.0, 2.5, 5.0],
        extra={"target_source": "truth"},
        **kw,
    )
    return net


def test_round_trip_same_outputs(tmp_path):
    net = _saved(tmp_path)
    loaded, meta = load_model(tmp_path / "cbv.safetensors")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), net(x))
    assert meta["target"] == "cbv" and meta["unit"] == "mL/100 g"
    assert meta["value_range"] == [0.0, 10.0] and meta["n_frames"] == 3
    assert meta["input"] == {"hu_window": [40.0, 400.0], "mean": 0.2375, "std": 0.3159}
    assert meta["architecture"]["features"] == list(FEATS)
    assert load_model(tmp_path / "cbv.json")[1] == meta == load_model(tmp_path / "cbv")[1]


def test_round_trip_with_a_temporal_stem(tmp_path):
    torch.manual_seed(0)
    net = UNet(3, features=FEATS, temporal=6).eval()
    save_model(
        tmp_path / "ttp", net, target="ttp", frame_indices=[0, 5, 10], frame_times_s=[0.0, 2.5, 5.0]
    )
    loaded, meta = load_model(tmp_path / "ttp.safetensors")
    assert meta["architecture"]["temporal"] == 6 and loaded.temporal == 6
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), net(x))


def test_float16_storage_halves_the_file_and_loads_as_float32(tmp_path):
    _saved(tmp_path / "a")
    _saved(tmp_path / "b", dtype=torch.float16)
    a, b = (tmp_path / d / "cbv.safetensors" for d in "ab")
    assert b.stat().st_size < 0.7 * a.stat().st_size
    net, _ = load_model(b)
    assert all(p.dtype == torch.float32 for p in net.parameters())


def test_missing_and_damaged_files_name_the_file(tmp_path):
    _saved(tmp_path)
    with pytest.raises(WeightsError, match="other.json: missing"):
        load_model(tmp_path / "other")
    w = tmp_path / "cbv.safetensors"
    w.write_bytes(w.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(WeightsError, match=r"cbv.safetensors: checksum differs"):
        load_model(w)


def test_architecture_mismatch_is_a_weights_error(tmp_path):
    _saved(tmp_path)
    meta_path = tmp_path / "cbv.json"
    meta = json.loads(meta_path.read_text())
    meta["architecture"]["features"] = [4, 4, 8, 8, 16]  # bottleneck width changed
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(WeightsError, match=r"cbv.safetensors: tensor .* has shape"):
        load_model(tmp_path / "cbv")
    meta["architecture"]["features"] = [4, 4]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(WeightsError, match="cbv.json: architecture cannot be built"):
        load_model(tmp_path / "cbv")


def test_tensor_names_checked(tmp_path):
    _saved(tmp_path)
    w = tmp_path / "cbv.safetensors"
    tensors = load_file(str(w))
    tensors["extra.weight"] = torch.zeros(1)
    save_file(tensors, str(w))
    meta = json.loads((tmp_path / "cbv.json").read_text())
    meta.pop("weights_sha256")
    (tmp_path / "cbv.json").write_text(json.dumps(meta))
    with pytest.raises(WeightsError, match="unexpected"):
        load_model(w)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("format", "pytorch", "expected format"),
        ("target", "oef", "unknown target"),
        ("n_frames", 4, "disagree"),
        ("input", {"hu_window": [50, 350], "mean": 0.2375, "std": 0.3159}, "normalisation"),
        ("pixel_mm", [0.0, 1.0], "pixel_mm"),
        ("pixel_mm", 1.9, "pixel_mm"),
        ("matrix", [128], "matrix"),
        ("filter", {"sigma_spatial_mm": 3.0}, "filter"),
        ("filter", {"sigma_spatial_mm": 3.0, "sigma_range_hu": -1}, "filter"),
    ],
)
def test_metadata_checked(tmp_path, key, value, match):
    _saved(tmp_path)
    meta = json.loads((tmp_path / "cbv.json").read_text())
    meta[key] = value
    (tmp_path / "cbv.json").write_text(json.dumps(meta))
    with pytest.raises(WeightsError, match=match):
        read_metadata(tmp_path / "cbv.json")


def test_never_unpickles(tmp_path, monkeypatch):
    _saved(tmp_path)

    def forbidden(*a, **k):
        raise AssertionError("torch.load called")

    monkeypatch.setattr(torch, "load", forbidden)
    load_model(tmp_path / "cbv")


def test_checkpoint_restores_model_and_adam_state(tmp_path):
    torch.manual_seed(0)
    net = UNet(2, features=FEATS)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x, y = torch.randn(2, 2, 16, 16), torch.rand(2, 1, 16, 16)
    for _ in range(2):
        opt.zero_grad()
        ((net(x) - y) ** 2).mean().backward()
        opt.step()
    save_checkpoint(tmp_path / "ckpt", net, opt, {"epoch": 4, "best": {"val_mse": 0.1}})
    net2 = UNet(2, features=FEATS)
    opt2 = torch.optim.Adam(net2.parameters(), lr=1e-3)
    state = load_checkpoint(tmp_path / "ckpt", net2, opt2)
    assert state == {"epoch": 4, "best": {"val_mse": 0.1}}
    for a, b in zip(net.state_dict().values(), net2.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    for _ in range(2):  # the same next steps
        for n, o in ((net, opt), (net2, opt2)):
            o.zero_grad()
            ((n(x) - y) ** 2).mean().backward()
            o.step()
    for a, b in zip(net.parameters(), net2.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_grid_and_filter_written_and_read_back(tmp_path):
    torch.manual_seed(0)
    net = UNet(3, features=FEATS).eval()
    save_model(
        tmp_path / "ttp", net, target="ttp", frame_indices=[0, 5, 10],
        frame_times_s=[0.0, 2.5, 5.0], pixel_mm=(1.953125, 1.953125), matrix=(128, 120),
        filter_sigmas=(2.0, 3.0),
    )  # fmt: skip
    meta = load_model(tmp_path / "ttp")[1]
    assert meta["pixel_mm"] == [1.953125, 1.953125] and meta["matrix"] == [128, 120]
    assert meta["filter"] == {
        "method": "guided bilateral", "sigma_spatial_mm": 2.0, "sigma_range_hu": 3.0,
    }  # fmt: skip


def test_file_without_grid_filter_or_validation_still_loads(tmp_path):
    _saved(tmp_path)  # as every model written before those fields existed
    meta = load_model(tmp_path / "cbv")[1]
    assert not {"pixel_mm", "matrix", "filter", "validated_on"} & set(meta)

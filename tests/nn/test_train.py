"""Training: outputs, determinism on CPU, resume after interruption, CV table, metrics."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from safetensors.torch import load_file

import ctpmaps.nn.train.loop as loop_mod
from ctpmaps.errors import InputError
from ctpmaps.nn.predict import load_models
from ctpmaps.nn.train import TrainConfig, train
from ctpmaps.nn.weights import load_model, read_metadata


def _cfg(**kw):
    base = dict(
        target="cbv",
        target_source="truth",
        features=[4, 4, 8, 8, 8],
        n_frames=4,
        epochs_pre=2,
        epochs_fine=1,
        pre_size=32,
        lr=1e-3,
        batch=8,
        seed=3,
    )
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def run(tiny_cohort, cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "cbv"
    return out, train(tiny_cohort, out, _cfg(), cache_dir=cache)


def test_outputs(run):
    out, result = run
    for name in ("config.json", "splits.json", "cv_table.md", "cv_table.csv", "test_metrics.json"):
        assert (out / name).is_file(), name
    for i in range(3):
        fold = out / f"fold-{i}"
        for name in ("history.csv", "learning_curve.png", "best.safetensors", "best.json"):
            assert (fold / name).is_file(), f"fold-{i}/{name}"
        rows = list(csv.DictReader(open(fold / "history.csv")))
        assert [r["stage"] for r in rows] == ["pre", "pre", "fine"]
        assert [r["size"] for r in rows] == ["32", "32", "64"]
        assert {"train_mse", "val_mse", "train_psnr", "val_psnr"} <= set(rows[0])
        assert {"train_mse_brain", "val_mse_brain", "val_psnr_brain"} <= set(rows[0])
        assert {"val_const_mse", "val_const_mse_brain"} <= set(rows[0])
        for r in rows:  # a constant cannot beat the brain's spread in the slice: both > 0
            assert float(r["val_const_mse_brain"]) > 0 and float(r["val_mse_brain"]) > 0
    splits = json.loads((out / "splits.json").read_text())
    assert len(splits["test"]) == 1 and result["test"]["patients"] == splits["test"]
    net, meta = load_model(out / "cbv")
    assert meta["n_frames"] == 4 and meta["frame_indices"] == [0, 5, 10, 15]
    assert meta["target_source"] == "truth"
    assert meta["cohort"]["phantom_seed"] == 3 and meta["cohort"]["n_patients"] == 4
    assert meta["metrics"]["best_fold"] == result["best_fold"]
    assert meta["metrics"]["test"]["mse"] == pytest.approx(result["test"]["mse"])
    table = (out / "cv_table.md").read_text()
    assert table.count("| CBV |") == 4 and "mean ± SD" in table
    assert "val MSE brain" in table and "const val MSE brain" in table
    test = json.loads((out / "test_metrics.json").read_text())
    for key in ("mse", "psnr", "mse_brain", "psnr_brain", "const_mse", "const_mse_brain"):
        assert test[key] == pytest.approx(meta["metrics"]["test"][key]), key
    assert 0 < test["const_value"] < 1 and test["const_mse_brain"] > 0


def test_model_records_grid_filter_and_validation(run):
    out, _ = run
    meta = read_metadata(out / "cbv")
    # the tiny cohort: 64 x 64 over 250 mm; the last stage (fine-tuning) at full size
    assert meta["matrix"] == [64, 64]
    assert meta["pixel_mm"] == pytest.approx([250 / 64, 250 / 64])
    assert meta["filter"] == {
        "method": "guided bilateral", "sigma_spatial_mm": 3.0, "sigma_range_hu": 20.0,
    }  # fmt: skip
    assert meta["validated_on"] == "phantom" and meta["cohort"]["kind"] == "phantom"
    (model,) = load_models(out / "cbv")
    assert model.pixel_mm == pytest.approx((250 / 64, 250 / 64))
    assert model.filter_sigmas == (3.0, 20.0)
    v = model.validation
    assert v.on == "phantom" and v.recorded and not v.clinical and v.n_test_patients == 1
    # the best epoch of a fold trained without fine-tuning learned the down-sampled grid
    fold = read_metadata(out / "fold-0" / "best")
    assert fold["best_epoch"]["stage"] == "fine" and fold["matrix"] == [64, 64]


def test_pre_training_only_records_the_down_sampled_grid(tiny_cohort, cache, tmp_path):
    train(tiny_cohort, tmp_path / "pre", _cfg(epochs_fine=0, folds=2), cache_dir=cache)
    meta = read_metadata(tmp_path / "pre" / "cbv")
    assert meta["matrix"] == [32, 32]
    assert meta["pixel_mm"] == pytest.approx([250 / 32, 250 / 32])


def test_fine_tuning_starts_from_the_given_weights(run, tiny_cohort, cache, tmp_path):
    out, _ = run
    start = load_file(str(out / "cbv.safetensors"))
    cfg = _cfg(epochs_pre=0, epochs_fine=1, lr=1e-9, folds=2, init_weights=str(out / "cbv"))
    train(tiny_cohort, tmp_path / "ft", cfg, cache_dir=cache)
    tuned = load_file(str(tmp_path / "ft" / "cbv.safetensors"))
    for k in start:  # a learning rate of 1e-9 barely moves them (batch-norm statistics do)
        if "running" not in k and "num_batches" not in k:
            torch.testing.assert_close(tuned[k], start[k], atol=1e-6, rtol=0)
    with pytest.raises(InputError, match="init_weights"):
        train(tiny_cohort, tmp_path / "bad", _cfg(n_frames=5, init_weights=str(out / "cbv")),
              cache_dir=cache)  # fmt: skip


def test_deterministic_on_cpu(run, tiny_cohort, cache, tmp_path):
    out, _ = run
    train(tiny_cohort, tmp_path / "again", _cfg(), cache_dir=cache)
    a = load_file(str(out / "cbv.safetensors"))
    b = load_file(str(tmp_path / "again" / "cbv.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_resume_after_interruption_gives_the_same_model(
    run, tiny_cohort, cache, tmp_path, monkeypatch
):
    out, _ = run
    real = loop_mod._train_epoch
    calls = {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:  # fold 1, second epoch
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(loop_mod, "_train_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_cohort, tmp_path / "resumed", _cfg(), cache_dir=cache)
    monkeypatch.setattr(loop_mod, "_train_epoch", real)
    assert not (tmp_path / "resumed" / "cbv.safetensors").exists()
    train(tiny_cohort, tmp_path / "resumed", _cfg(), cache_dir=cache)
    a = load_file(str(out / "cbv.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "cbv.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    rows = list(csv.DictReader(open(tmp_path / "resumed" / "fold-1" / "history.csv")))
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]


def test_other_settings_in_the_same_folder_are_refused(run, tiny_cohort, cache):
    out, _ = run
    with pytest.raises(InputError, match="other settings \\(lr\\)"):
        train(tiny_cohort, out, _cfg(lr=1e-4), cache_dir=cache)


@pytest.mark.parametrize(
    "kw",
    [
        {"target": "oef"},
        {"preset": "huge", "features": None},
        {"epochs_pre": 0, "epochs_fine": 0},
        {"pre_size": 40},
        {"temporal": 2.5},
        {"temporal": -1},
        {"batch": 0},
        {"epochs_pre": 10.0},
        {"plateau_patience": True},
        {"lr": 0.0},
        {"weights_dtype": "int8"},
        {"target": "cbv", "time_head": True},
    ],
)
def test_bad_settings(kw):
    with pytest.raises(InputError):
        _cfg(**kw).check()


def test_masked_loss_counts_brain_pixels_only():
    pred = torch.zeros(1, 1, 4, 4)
    y = torch.ones(1, 1, 4, 4)
    m = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    m[..., 0, 0] = True
    y[..., 1:, :] = 0.0
    assert float(loop_mod._loss(pred, y, m, (4, 4), masked=True)) == 1.0
    assert float(loop_mod._loss(pred, y, m, (4, 4), masked=False)) == 0.25
    assert float(loop_mod._loss(pred, y, m, (1, 4), masked=False)) == 1.0  # padding ignored


def test_run_folder_read_as_the_evaluation_tables(run, tmp_path):
    """`ctpmaps evaluate --training` reads a run as written: folds, mean, SD, curves, test."""
    import numpy as np

    from ctpmaps.evaluation.training import training_tables
    from ctpmaps.report.evaluation import learning_curves_figure

    out, result = run
    tables = training_tables([out])
    folds = [r for r in tables["cv"] if r["fold"] not in ("mean", "sd")]
    written = list(csv.DictReader(open(out / "cv_table.csv")))
    assert [r["fold"] for r in folds] == [r["fold"] for r in written] and len(folds) == 3
    val = [float(r["val_mse_brain"]) for r in written]
    by_fold = {r["fold"]: r for r in tables["cv"]}
    assert by_fold["mean"]["val_mse_brain"] == pytest.approx(np.mean(val))
    assert by_fold["sd"]["val_mse_brain"] == pytest.approx(np.std(val, ddof=1))
    assert by_fold["mean"]["val_psnr"] == pytest.approx(-10 * np.log10(by_fold["mean"]["val_mse"]))
    assert len(tables["learning_curves"]) == 3 * 3  # 3 folds x (2 pre + 1 fine) epochs
    assert {r["target"] for r in tables["learning_curves"]} == {"cbv"}
    (test,) = tables["test"]
    assert test["mse_brain"] == pytest.approx(result["test"]["mse_brain"])
    assert learning_curves_figure(tables["learning_curves"])[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(InputError, match="ctpmaps train run folder"):
        training_tables([tmp_path])


def test_masked_loss_selects_epochs_and_fold_inside_the_brain(tiny_cohort, cache, tmp_path):
    """With the loss inside the brain, the best epoch of each fold (of its last stage, the
    full-size one) and the best fold are those of the lowest validation MSE inside the
    brain, not over the slice."""
    cfg = _cfg(masked_loss=True, folds=2, epochs_pre=1, epochs_fine=3)
    assert cfg.selection_metric == "val_mse_brain" and _cfg().selection_metric == "val_mse"
    result = train(tiny_cohort, tmp_path / "cbv", cfg, cache_dir=cache)
    for i, best in enumerate(result["folds"]):
        rows = list(csv.DictReader(open(tmp_path / "cbv" / f"fold-{i}" / "history.csv")))
        rows = [r for r in rows if r["stage"] == "fine"]
        brain = [float(r["val_mse_brain"]) for r in rows]
        assert best["epoch"] == int(rows[brain.index(min(brain))]["epoch"])
        assert best["val_mse_brain"] == pytest.approx(min(brain))
    by_brain = [r["val_mse_brain"] for r in result["folds"]]
    assert result["best_fold"] == by_brain.index(min(by_brain))


def test_flips_move_frames_target_and_mask_together_inside_the_slice():
    """`augment`: a slice's frames, target and mask are flipped alike, only in the corner
    that holds the slice (the padding stays at the end), about half the time per axis, and
    the same generator seed gives the same flips."""
    h, w, pad = 5, 6, 8
    base = torch.arange(h * w, dtype=torch.float32).reshape(h, w)
    x = torch.full((64, 3, pad, pad), -1.0)
    x[..., :h, :w] = base
    y, m = x[:, :1].clone(), x[:, :1] > 10
    xs, ys, ms = loop_mod._flip(
        x.clone(), y.clone(), m.clone(), (h, w), torch.Generator().manual_seed(1)
    )
    seen = set()
    for i in range(64):
        sl = xs[i, 0, :h, :w]
        for dims in ([], [-2], [-1], [-2, -1]):
            if torch.equal(sl, base.flip(dims) if dims else base):
                seen.add(tuple(dims))
                break
        else:
            raise AssertionError(f"slice {i} is not a flip of the input")
        assert torch.equal(xs[i], xs[i, :1].expand_as(xs[i]))  # every frame alike
        assert torch.equal(ys[i, 0], xs[i, 0]) and torch.equal(ms[i, 0], xs[i, 0] > 10)
        assert (xs[i, :, h:, :] == -1).all() and (xs[i, :, :, w:] == -1).all()
    assert len(seen) == 4
    again = loop_mod._flip(
        x.clone(), y.clone(), m.clone(), (h, w), torch.Generator().manual_seed(1)
    )
    assert torch.equal(again[0], xs)


def test_augmented_training_runs_and_is_recorded(tiny_cohort, cache, tmp_path):
    result = train(tiny_cohort, tmp_path / "cbv", _cfg(augment=True, folds=1), cache_dir=cache)
    meta = read_metadata(result["model"])
    assert meta["training"]["augment"] is True


def test_time_shifted_training_runs_and_is_recorded(tiny_cohort, cache, tmp_path):
    cfg = _cfg(target="ttp", time_shift=True, folds=1)
    result = train(tiny_cohort, tmp_path / "ttp", cfg, cache_dir=cache)
    meta = read_metadata(result["model"])
    assert meta["training"]["time_shift"] is True
    assert meta["frame_indices"] == [0, 5, 10, 15]  # inference still starts at frame 0

"""Slices from a cohort folder: layouts, targets, cache, padding and down-sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ctpmaps.errors import InputError
from ctpmaps.io.nifti import read_nifti_map, read_nifti_study
from ctpmaps.nn.dataset import (
    AIR,
    SliceDataset,
    find_cohort,
    load_patient,
    pad_slices,
    resize_slices,
)
from ctpmaps.nn.normalise import normalise_target


def test_phantom_layout_truth_targets_and_cache(tiny_cohort, tmp_path):
    cohort = find_cohort(tiny_cohort)
    assert cohort.layout == "phantom"
    assert cohort.patients == ("MOL-001", "MOL-002", "MOL-003", "MOL-004")
    p = load_patient(cohort, "MOL-002", target="cbv", n_frames=5, cache_dir=tmp_path)
    assert p.inputs.shape == (8, 5, 64, 64) and p.inputs.dtype == np.float16
    truth = read_nifti_map(tiny_cohort / "MOL-002" / "truth" / "cbv.nii.gz")[0]
    np.testing.assert_allclose(p.target[3], normalise_target(truth[:, :, 3].T, "cbv"))
    assert p.mask.dtype == bool and p.mask.any()
    assert len(list(tmp_path.rglob("*.safetensors"))) == 1
    again = load_patient(cohort, "MOL-002", target="ttp", n_frames=10, cache_dir=tmp_path)
    np.testing.assert_array_equal(again.inputs[:, ::2], p.inputs)  # stride 4 vs 2, cached
    assert len(list(tmp_path.rglob("*.safetensors"))) == 1


def test_phantom_nlr_targets_are_computed_on_filtered_frames_and_cached(
    tiny_cohort, tmp_path, monkeypatch
):
    # the NLR fit itself is tested in tests/perfusion; here: what it is given, what is kept
    import ctpmaps.perfusion.maps
    from ctpmaps.perfusion.base import PerfusionMaps

    calls = []

    def tissue_noise(frames):  # air and bone are not filtered (GUIDE_WINDOW_HU)
        # Robust SD of frame-to-frame differences: the bolus's own steps (arteries, the
        # sinus) are a minority that a plain SD would count as noise.
        m = frames.mean(-1)
        d = np.diff(frames[(m > -50) & (m < 250)], axis=-1)
        return float(1.4826 * np.median(np.abs(d - np.median(d))))

    def fake_compute_maps(study, *, method):
        calls.append((method, tissue_noise(study.frames)))
        ones = np.ones(study.shape, np.float32)
        return type("R", (), {"maps": PerfusionMaps(*(ones * v for v in (60, 4, 4, 10, 1, 1)))})

    monkeypatch.setattr(ctpmaps.perfusion.maps, "compute_maps", fake_compute_maps)
    cohort = find_cohort(tiny_cohort)
    p = load_patient(cohort, "MOL-001", target="cbf", source="nlr", cache_dir=tmp_path)
    np.testing.assert_allclose(p.target, 60 / 150)
    raw = read_nifti_study(tiny_cohort / "MOL-001" / "ctp.nii.gz")
    assert calls[0][0] == "nlr" and calls[0][1] < 0.7 * tissue_noise(raw.frames)  # filtered
    assert len(list(tmp_path.rglob("nlr-*.safetensors"))) == 1
    p = load_patient(cohort, "MOL-001", target="cbv", source="nlr", cache_dir=tmp_path)
    np.testing.assert_allclose(p.target, 4 / 10)
    assert len(calls) == 1  # the second map came from the cache


def test_unitobrain_layout_reads_filtered_frames_and_nlr_maps(tiny_cohort, tmp_path):
    cohort = find_cohort(tiny_cohort / "unitobrain")
    assert cohort.layout == "unitobrain" and len(cohort.patients) == 4
    p = load_patient(cohort, "MOL-003", target="ttp", source="nlr", n_frames=10)
    assert p.inputs.shape == (8, 10, 64, 64)
    with pytest.raises(InputError, match="NLR maps only"):
        load_patient(cohort, "MOL-003", target="ttp", source="truth")
    with pytest.raises(InputError, match="not 'tmax'"):
        load_patient(cohort, "MOL-003", target="tmax", source="nlr")


def test_bad_cohort_and_arguments(tmp_path, tiny_cohort):
    with pytest.raises(InputError, match="no patients"):
        find_cohort(tmp_path)
    cohort = find_cohort(tiny_cohort)
    with pytest.raises(InputError, match="expected one of"):
        load_patient(cohort, "MOL-001", target="oef")
    with pytest.raises(InputError, match="no patient"):
        load_patient(cohort, "MOL-999", target="cbv")
    with pytest.raises(InputError, match="frames"):
        load_patient(cohort, "MOL-001", target="cbv", n_frames=21)


def test_pad_and_resize():
    x = torch.zeros(2, 3, 30, 20)
    p = pad_slices(x, AIR)
    assert p.shape == (2, 3, 32, 32) and float(p[0, 0, 31, 31]) == pytest.approx(AIR)
    r = resize_slices(torch.ones(1, 1, 128, 128), 64)
    assert r.shape == (1, 1, 64, 64)
    m = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    m[..., :2, :2] = True
    assert resize_slices(m, 2, is_mask=True).tolist() == [[[[True, False], [False, False]]]]


def test_slice_dataset(tiny_cohort):
    cohort = find_cohort(tiny_cohort)
    pats = [load_patient(cohort, pid, target="cbv", n_frames=4) for pid in cohort.patients[:2]]
    ds = SliceDataset(pats, size=16)
    assert len(ds) == 16 and ds.patients[8] == "MOL-002"
    x, y, m = ds[9]
    assert x.shape == (4, 16, 16) and x.dtype == torch.float32
    assert y.shape == m.shape == (1, 16, 16) and m.dtype == torch.bool


def test_filter_of_the_frames_is_a_setting_recorded_with_the_slices(tiny_cohort, tmp_path):
    cohort = find_cohort(tiny_cohort)
    seed = load_patient(cohort, "MOL-004", target="cbv", n_frames=5, cache_dir=tmp_path)
    ours = load_patient(
        cohort, "MOL-004", target="cbv", n_frames=5, cache_dir=tmp_path, filter_sigmas=(2.0, 3.0)
    )
    assert seed.filter_sigmas == (3.0, 20.0) and ours.filter_sigmas == (2.0, 3.0)
    assert seed.spacing_mm == ours.spacing_mm == pytest.approx((250 / 64, 250 / 64))
    # a 3 HU range kernel smooths parenchyma less than a 20 HU one: more frame-to-frame noise
    assert np.diff(ours.inputs.astype(np.float32), axis=1)[
        ours.mask[:, None].repeat(4, 1)
    ].std() > (
        np.diff(seed.inputs.astype(np.float32), axis=1)[seed.mask[:, None].repeat(4, 1)].std()
    )
    assert len(list(tmp_path.rglob("inputs-*.safetensors"))) == 2  # cached apart
    ubrain = find_cohort(tiny_cohort / "unitobrain")
    with pytest.raises(InputError, match="filtered with"):
        load_patient(ubrain, "MOL-001", target="cbv", source="nlr", filter_sigmas=(2.0, 3.0))
    with pytest.raises(InputError, match="filter_sigmas"):
        load_patient(cohort, "MOL-004", target="cbv", filter_sigmas=(2.0, 0.0))


def test_dataset_pixel_size_follows_down_sampling(tiny_cohort):
    cohort = find_cohort(tiny_cohort)
    pats = [load_patient(cohort, pid, target="cbv", n_frames=4) for pid in cohort.patients[:2]]
    assert SliceDataset(pats).pixel_mm == pytest.approx((250 / 64, 250 / 64))
    assert SliceDataset(pats, size=16).pixel_mm == pytest.approx((250 / 16, 250 / 16))


def test_time_shift_keeps_the_frames_between_and_moves_ttp_by_the_shift(tiny_cohort, tmp_path):
    """`time_shift`: the T frames starting k acquisition frames later, and TTP (counted from
    the first frame the network sees) earlier by k frame intervals; CBV does not move."""
    cohort = find_cohort(tiny_cohort)
    every = load_patient(cohort, "MOL-001", target="ttp", cache_dir=tmp_path)  # 20 frames, 2 s
    p = load_patient(cohort, "MOL-001", target="ttp", n_frames=5, cache_dir=tmp_path,
                     time_shift=True)  # fmt: skip
    assert len(p.shifted) == 3  # stride 4
    for k, frames in enumerate(p.shifted, start=1):
        np.testing.assert_array_equal(frames, every.inputs[:, k::4][:, :5])
    assert p.shift_step == pytest.approx(-2.0 / 50.0)
    cbv = load_patient(cohort, "MOL-001", target="cbv", n_frames=5, cache_dir=tmp_path,
                       time_shift=True)  # fmt: skip
    assert cbv.shift_step == 0.0
    assert load_patient(cohort, "MOL-001", target="ttp", time_shift=True).shifted == ()

    ds = SliceDataset([p], time_shift=True)
    plain = SliceDataset([p])
    assert torch.equal(ds[2][0], plain[2][0])  # before a draw: frame 0
    ds.draw_shifts(torch.Generator().manual_seed(0))
    shifts = ds._shifts.tolist()
    assert set(shifts) <= {0, 1, 2, 3}
    for i, k in enumerate(shifts):
        x, y, m = ds[i]
        x0, y0, _ = plain[i]
        inside = y0 > 0
        if k:
            assert torch.equal(x, torch.from_numpy(p.shifted[k - 1][i]).float())
        # the phantom's TTP is seconds after the first frame: k frames later, 2k s less
        np.testing.assert_allclose((y0 - y)[inside] * 50.0, 2.0 * k, atol=1e-4)
        assert torch.equal(y[~inside], y0[~inside])
    assert len(plain.shifted) == 0  # validation slices hold frame 0 only


def test_time_shift_refuses_unequal_frame_intervals():
    from ctpmaps.nn.dataset import _shifted_frames

    arrays = {"inputs": np.zeros((1, 6, 2, 2)), "times": np.array([0, 1, 2, 3, 5, 7.0])}
    with pytest.raises(InputError, match="equally spaced"):
        _shifted_frames(arrays, np.array([0, 2, 4]), "ttp", "MOL-009")


def test_slices_off_the_padding_grid_keep_their_size_and_pixel():
    """A 40 x 40 slice is padded to 48 x 48 for the network; its size and pixel size are
    the slice's own (the metrics leave the padding out)."""
    from ctpmaps.nn.dataset import PatientSlices

    rng = np.random.default_rng(0)
    p = PatientSlices(
        "P", rng.normal(0, 1, (2, 3, 40, 40)).astype(np.float16),
        rng.uniform(0, 1, (2, 40, 40)).astype(np.float32), np.ones((2, 40, 40), bool),
        spacing_mm=(2.0, 2.0), shifted=(rng.normal(0, 1, (2, 3, 40, 40)).astype(np.float16),),
    )  # fmt: skip
    ds = SliceDataset([p], time_shift=True)
    assert ds.hw == (40, 40) and ds.pixel_mm == pytest.approx((2.0, 2.0))
    assert ds.inputs.shape[-2:] == ds.shifted[0].shape[-2:] == (48, 48)
    assert float(ds.shifted[0][0, 0, 45, 45]) == pytest.approx(AIR, abs=1e-3)

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

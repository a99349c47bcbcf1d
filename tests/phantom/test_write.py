"""Phantom outputs: every format loads back to the same frames, times and truth."""

from __future__ import annotations

import functools
import json
from dataclasses import replace

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from ctpmaps.errors import InputError
from ctpmaps.io import load_study
from ctpmaps.phantom import PhantomConfig, acquisition_preset, simulate_patient
from ctpmaps.phantom.write import write_cohort, write_phantom_study


def smooth_frames(study, *, sigma_px: float):
    """A stand-in for the processing chain's filter (module level: picklable)."""
    frames = ndimage.gaussian_filter(study.frames, (sigma_px, sigma_px, 0, 0))
    return replace(study, frames=frames)


SMOOTH = functools.partial(smooth_frames, sigma_px=1.0)


@pytest.fixture(scope="module")
def small():
    cfg = PhantomConfig(acquisition=acquisition_preset("seed", matrix=64, n_frames=12))
    return simulate_patient(cfg, seed=21, normal=False, patient_id="MOL-007")


def test_nifti_and_dicom_load_back(small, tmp_path):
    folder = write_phantom_study(small, tmp_path, formats=("nifti", "dicom"))
    assert folder == tmp_path / "MOL-007"
    expected = np.rint(small.study.frames)
    for path in (folder / "ctp.nii.gz", folder / "dicom"):
        s = load_study(path)
        np.testing.assert_allclose(s.frames, expected, atol=0.51, err_msg=str(path))
        np.testing.assert_allclose(s.times, small.study.times, atol=1e-3)
        np.testing.assert_allclose(s.affine, small.study.affine, atol=1e-3)
    dicom = load_study(folder / "dicom")
    assert dicom.source == "dicom" and dicom.metadata["patient_id"] == "MOL-007"


def test_truth_files(small, tmp_path):
    folder = write_phantom_study(small, tmp_path, formats=("nifti",))
    truth = folder / "truth"
    t = small.truth
    cbf = nib.load(truth / "cbf.nii.gz")
    np.testing.assert_allclose(cbf.get_fdata(), t.maps["cbf"], rtol=1e-6)
    assert b"mL/100 g/min" in cbf.header["descrip"].tobytes()
    for name in ("core", "penumbra", "hypoperfusion", "severe", "oligaemia", "brain"):
        mask = nib.load(truth / f"{name}_mask.nii.gz").get_fdata().astype(bool)
        np.testing.assert_array_equal(mask, t.masks[name], err_msg=name)
    for name in ("dispersion", "residue_k", "noise_sd", "response_peak"):
        img = nib.load(truth / f"{name}.nii.gz")
        np.testing.assert_array_equal(img.get_fdata(dtype=np.float32), getattr(t, name))
    assert b"[s]" in nib.load(truth / "dispersion.nii.gz").header["descrip"].tobytes()
    assert b"[HU]" in nib.load(truth / "noise_sd.nii.gz").header["descrip"].tobytes()
    for name in ("residue_label", "hemisphere", "tissue"):
        img = np.asarray(nib.load(truth / f"{name}.nii.gz").dataobj)
        assert img.dtype == np.uint8
        np.testing.assert_array_equal(img, getattr(t, name))
    params = json.loads((truth / "truth.json").read_text())
    assert params["patient_id"] == "MOL-007" and params["model"] == "heterogeneous"
    assert params["config"]["hematocrit_factor"] == pytest.approx(0.55 / 0.75)
    assert params["reference_cbf"] == pytest.approx(t.reference_cbf)
    assert params["vof_aif_area_ratio"] == pytest.approx(t.vof_aif_area_ratio)
    assert params["label_codes"]["residue_label"]["3"] == "exponential-like"
    assert params["label_codes"]["hemisphere"] == {"1": "left", "2": "right"}
    aif = np.loadtxt(truth / "aif.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(aif[:, 1], t.aif, atol=1e-3)


def test_unitobrain_layout_loads_back(small, tmp_path):
    write_phantom_study(small, tmp_path, formats=("unitobrain",), filter_frames=SMOOTH)
    root = tmp_path / "unitobrain"
    raw = load_study(root / "MOL-007")
    assert raw.source == "unitobrain"
    np.testing.assert_allclose(raw.frames, np.rint(small.study.frames), atol=0.51)
    np.testing.assert_allclose(raw.times, small.study.times, atol=1e-3)
    from ctpmaps.io.unitobrain import read_unitobrain_maps

    maps = read_unitobrain_maps(root, "MOL-007")
    np.testing.assert_allclose(maps["cbv"], small.truth.maps["cbv"], atol=0.006)


def test_unitobrain_without_filter_is_refused_before_writing(small, tmp_path):
    with pytest.raises(InputError, match="filter_frames"):
        write_phantom_study(small, tmp_path, formats=("nifti", "unitobrain"))
    assert not any(tmp_path.iterdir())
    with pytest.raises(InputError, match="filter_frames"):
        write_cohort(tmp_path / "c", n_patients=1, formats=("unitobrain",))
    assert not (tmp_path / "c").exists()


def test_existing_patient_not_overwritten(small, tmp_path):
    write_phantom_study(small, tmp_path)
    with pytest.raises(InputError, match="MOL-007: already exists"):
        write_phantom_study(small, tmp_path)
    write_phantom_study(small, tmp_path, overwrite=True)
    (tmp_path / "MOL-007" / "notes.txt").write_text("a user's file")  # survives an overwrite
    write_phantom_study(small, tmp_path, overwrite=True)
    assert (tmp_path / "MOL-007" / "notes.txt").read_text() == "a user's file"


def test_cohort_reproducible_and_parallel(tmp_path):
    cfg = PhantomConfig(acquisition=acquisition_preset("seed", matrix=32, n_frames=6))
    kw = {"n_patients": 3, "seed": 4, "config": cfg, "filter_frames": SMOOTH}
    a = write_cohort(tmp_path / "a", workers=1, formats=("nifti",), **kw)
    b = write_cohort(tmp_path / "b", workers=2, formats=("nifti", "unitobrain"), **kw)
    assert [r["seed"] for r in a] == [r["seed"] for r in b]
    assert len({r["seed"] for r in a}) == 3
    fa = nib.load(tmp_path / "a" / "MOL-002" / "ctp.nii.gz").get_fdata()
    fb = nib.load(tmp_path / "b" / "MOL-002" / "ctp.nii.gz").get_fdata()
    np.testing.assert_array_equal(fa, fb)
    assert (tmp_path / "b" / "unitobrain").is_dir()
    manifest = json.loads((tmp_path / "a" / "cohort.json").read_text())
    assert [p["patient_id"] for p in manifest["patients"]] == ["MOL-001", "MOL-002", "MOL-003"]
    assert manifest["config"]["model"] == "heterogeneous"

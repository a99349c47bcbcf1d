"""Phantom outputs: every format loads back to the same frames and times."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from ctpmaps.errors import InputError
from ctpmaps.io import load_study
from ctpmaps.phantom import PhantomConfig, acquisition_preset, simulate_patient
from ctpmaps.phantom.write import write_cohort, write_phantom_study


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
    cbf = nib.load(truth / "cbf.nii.gz")
    np.testing.assert_allclose(cbf.get_fdata(), small.truth.maps["cbf"], rtol=1e-6)
    assert b"mL/100 g/min" in cbf.header["descrip"].tobytes()
    core = nib.load(truth / "core_mask.nii.gz").get_fdata().astype(bool)
    np.testing.assert_array_equal(core, small.truth.masks["core"])
    params = json.loads((truth / "truth.json").read_text())
    assert params["patient_id"] == "MOL-007"
    assert params["config"]["hematocrit_factor"] == pytest.approx(0.55 / 0.75)
    aif = np.loadtxt(truth / "aif.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(aif[:, 1], small.truth.aif, atol=1e-3)


def test_unitobrain_layout_loads_back(small, tmp_path):
    write_phantom_study(small, tmp_path, formats=("unitobrain",))
    root = tmp_path / "unitobrain"
    raw = load_study(root / "MOL-007")
    assert raw.source == "unitobrain"
    np.testing.assert_allclose(raw.frames, np.rint(small.study.frames), atol=0.51)
    np.testing.assert_allclose(raw.times, small.study.times, atol=1e-3)
    from ctpmaps.io.unitobrain import read_unitobrain_maps

    maps = read_unitobrain_maps(root, "MOL-007")
    np.testing.assert_allclose(maps["cbv"], small.truth.maps["cbv"], atol=0.006)


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
    a = write_cohort(tmp_path / "a", n_patients=3, seed=4, config=cfg, workers=1)
    b = write_cohort(tmp_path / "b", n_patients=3, seed=4, config=cfg, workers=2)
    assert [r["seed"] for r in a] == [r["seed"] for r in b]
    assert len({r["seed"] for r in a}) == 3
    fa = nib.load(tmp_path / "a" / "MOL-002" / "ctp.nii.gz").get_fdata()
    fb = nib.load(tmp_path / "b" / "MOL-002" / "ctp.nii.gz").get_fdata()
    np.testing.assert_array_equal(fa, fb)
    manifest = json.loads((tmp_path / "a" / "cohort.json").read_text())
    assert [p["patient_id"] for p in manifest["patients"]] == ["MOL-001", "MOL-002", "MOL-003"]

"""Tests of `ctpmaps.io.unitobrain`: the UniToBrain cohort layout, written and read back."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pydicom
import pytest

from ctpmaps.errors import InputError
from ctpmaps.io.atomic import MANIFEST
from ctpmaps.io.study import Study
from ctpmaps.io.unitobrain import (
    find_unitobrain_patients,
    is_unitobrain_folder,
    read_unitobrain_maps,
    read_unitobrain_study,
    write_unitobrain_patient,
)


def _maps(shape, seed=0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "cbv": np.round(rng.uniform(3.0, 4.0, shape), 2),  # the values the seed's code lost
        "cbf": np.round(rng.uniform(5.0, 90.0, shape), 2),
        "ttp": np.round(rng.uniform(5.0, 30.0, shape), 2),
        "mtt": np.round(rng.uniform(2.0, 12.0, shape), 2),
        "delay": np.round(rng.uniform(0.0, 8.0, shape), 2),
    }


@pytest.fixture
def stages(make_study) -> dict[str, Study]:
    raw = make_study(seed=1)
    registered = make_study(seed=2)
    filtered = make_study(seed=3)
    return {"raw": raw, "registered": registered, "filtered": filtered}


@pytest.fixture
def cohort(tmp_path, stages):
    root = tmp_path / "unitobrain"
    for i, pid in enumerate(("MOL-001", "MOL-002")):
        write_unitobrain_patient(
            root, pid, **stages, maps=_maps(stages["filtered"].shape, seed=i), uid_seed="t"
        )
    return root


def test_layout_and_names(cohort):
    names = sorted(p.name for p in cohort.iterdir())
    assert names == [
        "MOL-001",
        "MOL-001_Registered",
        "MOL-001_Registered_Filtered_3mm_20HU",
        "MOL-001_Registered_Filtered_3mm_20HU_Maps",
        "MOL-002",
        "MOL-002_Registered",
        "MOL-002_Registered_Filtered_3mm_20HU",
        "MOL-002_Registered_Filtered_3mm_20HU_Maps",
    ]
    filtered = cohort / "MOL-001_Registered_Filtered_3mm_20HU"
    assert (filtered / "Filtered00001.dcm").is_file()  # the seed's own naming
    assert len(list(filtered.glob("*.dcm"))) == 15
    maps = cohort / "MOL-001_Registered_Filtered_3mm_20HU_Maps"
    assert sorted(p.name for p in maps.iterdir() if p.name != MANIFEST) == [
        "NLR_CBF",
        "NLR_CBV",
        "NLR_Delay",
        "NLR_MTT",
        "NLR_TTP",
    ]
    assert sorted(p.name for p in (maps / "NLR_CBV").glob("*.dcm")) == [
        "NLR_CBV001.dcm",
        "NLR_CBV002.dcm",
        "NLR_CBV003.dcm",
    ]


def test_stored_tags(cohort):
    raw = pydicom.dcmread(next((cohort / "MOL-001").glob("*.dcm")))
    pytest.importorskip("imagecodecs")
    assert raw.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.70"  # JPEG Lossless SV1
    cbv = pydicom.dcmread(
        cohort / "MOL-001_Registered_Filtered_3mm_20HU_Maps/NLR_CBV/NLR_CBV001.dcm"
    )
    assert cbv.PixelRepresentation == 0 and cbv.BitsAllocated == 16
    assert float(cbv.RescaleSlope) == 0.01 and float(cbv.RescaleIntercept) == 0
    filtered = pydicom.dcmread(cohort / "MOL-001_Registered_Filtered_3mm_20HU/Filtered00001.dcm")
    assert raw.StudyInstanceUID == cbv.StudyInstanceUID == filtered.StudyInstanceUID
    assert raw.FrameOfReferenceUID == cbv.FrameOfReferenceUID
    assert len({raw.SeriesInstanceUID, cbv.SeriesInstanceUID, filtered.SeriesInstanceUID}) == 3
    assert raw.PatientID == "MOL-001"


def test_find_patients_and_recognise_folders(cohort, tmp_path):
    assert find_unitobrain_patients(cohort) == ["MOL-001", "MOL-002"]
    assert is_unitobrain_folder(cohort)
    for name in ("MOL-001", "MOL-001_Registered", "MOL-002_Registered_Filtered_3mm_20HU_Maps"):
        assert is_unitobrain_folder(cohort / name)
    (tmp_path / "plain").mkdir()
    assert not is_unitobrain_folder(tmp_path / "plain")
    assert not is_unitobrain_folder(tmp_path / "missing")
    assert find_unitobrain_patients(tmp_path / "missing") == []


@pytest.mark.parametrize("stage", ["raw", "registered", "filtered"])
def test_read_each_stage(cohort, stages, stage):
    study = read_unitobrain_study(cohort, patient_id="MOL-001", stage=stage)
    expected = stages[stage]
    np.testing.assert_array_equal(study.frames, expected.frames)
    np.testing.assert_allclose(study.times, expected.times, atol=1e-5)
    np.testing.assert_allclose(study.affine, expected.affine, atol=1e-5)
    assert study.source == "unitobrain"
    assert study.metadata["unitobrain_patient"] == "MOL-001"
    assert study.metadata["unitobrain_stage"] == stage


def test_default_stage_follows_the_folder(cohort, stages):
    by_folder = {
        "MOL-002": "raw",
        "MOL-002_Registered": "registered",
        "MOL-002_Registered_Filtered_3mm_20HU": "filtered",
        "MOL-002_Registered_Filtered_3mm_20HU_Maps": "filtered",
    }
    for name, stage in by_folder.items():
        study = read_unitobrain_study(cohort / name)
        assert study.metadata["unitobrain_stage"] == stage
        np.testing.assert_array_equal(study.frames, stages[stage].frames)


def test_cohort_needs_a_patient(cohort):
    with pytest.raises(InputError, match="patient_id") as err:
        read_unitobrain_study(cohort)
    assert "MOL-001" in str(err.value) and "MOL-002" in str(err.value)
    with pytest.raises(InputError, match="no patient"):
        read_unitobrain_study(cohort, patient_id="MOL-999")
    with pytest.raises(InputError, match="stage"):
        read_unitobrain_study(cohort, patient_id="MOL-001", stage="smoothed")


def test_maps_round_trip(cohort, stages):
    maps = read_unitobrain_maps(cohort, "MOL-002")
    expected = _maps(stages["filtered"].shape, seed=1)
    assert sorted(maps) == ["cbf", "cbv", "delay", "mtt", "ttp"]
    for key, values in expected.items():
        assert maps[key].dtype == np.float32 and maps[key].shape == values.shape
        np.testing.assert_allclose(maps[key], values, atol=0.005 + 1e-6, err_msg=key)
    assert 3.0 <= maps["cbv"].min() and maps["cbv"].max() <= 4.0  # physical, not wrapped
    from_folder = read_unitobrain_maps(cohort / "MOL-002_Registered")
    np.testing.assert_array_equal(from_folder["cbf"], maps["cbf"])


def test_maps_clipped_with_warnings(tmp_path, stages, caplog):
    maps = _maps(stages["filtered"].shape)
    maps["cbf"][0, 0, 0] = 1000.0
    maps["mtt"][1, 0, 0] = -2.0
    maps["ttp"][2, 0, 0] = np.nan
    with caplog.at_level(logging.WARNING, logger="ctpmaps.io.unitobrain"):
        write_unitobrain_patient(tmp_path, "MOL-003", **stages, maps=maps)
    assert "above 655.35" in caplog.text and "negative" in caplog.text and "NaN" in caplog.text
    read = read_unitobrain_maps(tmp_path, "MOL-003")
    assert read["cbf"][0, 0, 0] == pytest.approx(655.35, abs=1e-3)
    assert read["mtt"][1, 0, 0] == 0 and read["ttp"][2, 0, 0] == 0


def test_missing_map_folder(cohort):
    missing = cohort / "MOL-001_Registered_Filtered_3mm_20HU_Maps" / "NLR_MTT"
    shutil.rmtree(missing)
    with pytest.raises(InputError, match="missing map folder") as err:
        read_unitobrain_maps(cohort, "MOL-001")
    assert err.value.source == str(missing)
    shutil.rmtree(missing.parent)
    with pytest.raises(InputError, match="maps folder") as err:
        read_unitobrain_maps(cohort, "MOL-001")
    assert err.value.source == str(missing.parent)


def test_missing_stage_folder(cohort):
    shutil.rmtree(cohort / "MOL-001_Registered")
    with pytest.raises(InputError, match="registered frames") as err:
        read_unitobrain_study(cohort, patient_id="MOL-001", stage="registered")
    assert err.value.source == str(cohort / "MOL-001_Registered")


def test_writer_refuses_bad_input_and_writes_nothing(tmp_path, stages):
    shape = stages["filtered"].shape
    maps = _maps(shape)
    del maps["delay"]
    with pytest.raises(InputError, match="keys"):
        write_unitobrain_patient(tmp_path / "c", "MOL-001", **stages, maps=maps)
    maps = _maps((4, 4, 3))
    with pytest.raises(InputError, match="shape"):
        write_unitobrain_patient(tmp_path / "c", "MOL-001", **stages, maps=maps)
    with pytest.raises(InputError, match="patient_id"):
        write_unitobrain_patient(tmp_path / "c", "../x", **stages, maps=_maps(shape))
    assert not (tmp_path / "c").exists() or list((tmp_path / "c").iterdir()) == []


def test_writer_overwrite(cohort, stages):
    maps = _maps(stages["filtered"].shape, seed=5)
    with pytest.raises(InputError, match="overwrite"):
        write_unitobrain_patient(cohort, "MOL-001", **stages, maps=maps)
    write_unitobrain_patient(cohort, "MOL-001", **stages, maps=maps, overwrite=True)
    np.testing.assert_allclose(
        read_unitobrain_maps(cohort, "MOL-001")["cbf"], maps["cbf"], atol=0.006
    )
    assert not [p for p in cohort.iterdir() if p.name.startswith(".")]


def test_writer_failure_leaves_nothing(tmp_path, stages, monkeypatch):
    import ctpmaps.io.unitobrain as ub

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ub, "write_dicom_volume", broken)
    with pytest.raises(OSError, match="disk full"):
        write_unitobrain_patient(
            tmp_path, "MOL-001", **stages, maps=_maps(stages["filtered"].shape)
        )
    assert list(tmp_path.iterdir()) == []

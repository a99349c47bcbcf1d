"""The command line: exit codes, outputs and messages."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from ctpmaps.cli import app

runner = CliRunner()


def test_phantom_then_info(tmp_path):
    res = runner.invoke(
        app,
        [
            "phantom",
            str(tmp_path / "c"),
            "--patients",
            "2",
            "--matrix",
            "64",
            "--seed",
            "3",
            "--workers",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "MOL-002" in res.output
    manifest = json.loads((tmp_path / "c" / "cohort.json").read_text())
    assert manifest["n_patients"] == 2
    res = runner.invoke(app, ["info", str(tmp_path / "c" / "MOL-001" / "ctp.nii.gz"), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["shape"] == [64, 64, 8] and summary["n_frames"] == 89
    assert summary["times_s"][1] == 0.5


def test_bad_format_exit_code(tmp_path):
    res = runner.invoke(app, ["phantom", str(tmp_path), "--format", "analyze"])
    assert res.exit_code == 2
    assert "analyze" in res.output
    assert not any(tmp_path.iterdir())


def test_info_bad_input_names_file(tmp_path):
    (tmp_path / "x.txt").write_text("not a study")
    res = runner.invoke(app, ["info", str(tmp_path / "x.txt")])
    assert res.exit_code == 2
    assert "x.txt" in res.output and "Traceback" not in res.output


def test_preprocess_writes_study_report_and_dicom(tmp_path):
    from ctpmaps.io import load_study
    from ctpmaps.phantom import PhantomConfig, acquisition_preset, simulate_patient
    from ctpmaps.phantom.write import write_phantom_study

    cfg = PhantomConfig(
        acquisition=acquisition_preset("seed", matrix=64, n_frames=8), motion_mm=2.0, motion_deg=2.0
    )
    ph = simulate_patient(cfg, seed=2, patient_id="MOL-002")
    folder = write_phantom_study(ph, tmp_path, formats=("nifti", "dicom"))
    res = runner.invoke(app, ["preprocess", str(folder / "dicom"), str(tmp_path / "p")])
    assert res.exit_code == 0, res.output
    out = tmp_path / "p"
    for name in ("ctp.nii.gz", "ctp.json", "motion.csv", "motion.png", "run.json"):
        assert (out / name).exists(), name
    pre = load_study(out / "ctp.nii.gz")
    again = load_study(out / "dicom")
    np.testing.assert_allclose(pre.times, ph.study.times)
    np.testing.assert_allclose(again.frames, pre.frames, atol=0.51)
    # Filtering lowers the noise: differences between two still pre-bolus frames shrink.
    still = np.nonzero(~np.any(ph.truth.motion[1:] != 0, axis=1))[0]
    if still.size:
        b, k = ph.truth.masks["brain"], int(still[0]) + 1
        raw = (ph.study.frames[b][:, k] - ph.study.frames[b][:, 0]).std()
        # 2 mm on 3.9 mm pixels averages few voxels: a modest but certain reduction
        assert (pre.frames[b][:, k] - pre.frames[b][:, 0]).std() < 0.75 * raw
    bad = runner.invoke(
        app,
        ["preprocess", str(folder / "dicom"), str(tmp_path / "q"), "--no-motion", "--no-filter"],
    )
    assert bad.exit_code == 2 and not (tmp_path / "q").exists()
    again_cmd = runner.invoke(app, ["preprocess", str(folder / "dicom"), str(out)])
    assert again_cmd.exit_code == 2 and "already exists" in " ".join(again_cmd.output.split())
    params = json.loads((out / "run.json").read_text())["parameters"]
    assert (params["sigma_spatial_mm"], params["sigma_range_hu"]) == (2.0, 3.0)  # defaults
    seed = runner.invoke(
        app,
        ["preprocess", str(folder / "ctp.nii.gz"), str(tmp_path / "s"), "--no-motion",
         "--sigma-spatial", "3", "--sigma-range", "20"],
    )  # fmt: skip
    assert seed.exit_code == 0, seed.output
    params = json.loads((tmp_path / "s" / "run.json").read_text())["parameters"]
    assert (params["sigma_spatial_mm"], params["sigma_range_hu"]) == (3.0, 20.0)
    # The seed's 3 mm / 20 HU smooths more than the default 2 mm / 3 HU (docs/filter.md).
    brain = ph.truth.masks["brain"]
    smoother = load_study(tmp_path / "s" / "ctp.nii.gz").frames[..., 0][brain]
    default = runner.invoke(
        app, ["preprocess", str(folder / "ctp.nii.gz"), str(tmp_path / "d"), "--no-motion"]
    )
    assert default.exit_code == 0, default.output
    sharper = load_study(tmp_path / "d" / "ctp.nii.gz").frames[..., 0][brain]
    raw = ph.study.frames[..., 0][brain]
    assert np.abs(smoother - raw).mean() > np.abs(sharper - raw).mean()


def test_no_bolus_exits_3_naming_the_study_and_writes_nothing(small_stroke_files, tmp_path):
    import nibabel as nib

    src = nib.load(small_stroke_files / "ctp.nii.gz")
    first = np.asarray(src.dataobj)[..., :1].astype(np.float32)
    rng = np.random.default_rng(0)
    frames = first + rng.normal(0.0, 3.0, first.shape[:3] + (src.shape[3],)).astype(np.float32)
    study = tmp_path / "flat.nii.gz"  # the same head with no contrast given
    nib.save(nib.Nifti1Image(frames, src.affine, src.header), study)
    out = tmp_path / "out"
    res = runner.invoke(app, ["maps", str(study), str(out), "--no-motion", "--no-filter"])
    assert res.exit_code == 3, res.output
    assert str(study) in res.output and "no contrast bolus" in res.output
    assert "Traceback" not in res.output
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["flat.nii.gz"]

"""`ctpmaps.perfusion.compute_maps` and ``ctpmaps maps`` on a phantom study."""

from __future__ import annotations

import dataclasses
import json

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from ctpmaps.cli import app
from ctpmaps.errors import InputError
from ctpmaps.io import write_nifti_map, write_nifti_study
from ctpmaps.perfusion import MODEL_METHODS, compute_maps
from ctpmaps.phantom import PhantomConfig, acquisition_preset, simulate_patient
from ctpmaps.pipeline import run_study
from ctpmaps.preprocess.bilateral import guided_bilateral_filter


@pytest.fixture(scope="module")
def ph():
    # the default (harder) phantom, filtered as the chain does (unfiltered 128 frames leave
    # the SVD maps of small lesions to the noise: bsvd's core CBF read 6 x the truth)
    cfg = PhantomConfig(acquisition=acquisition_preset("seed", matrix=128))
    ph = simulate_patient(cfg, seed=11, normal=False)
    s = ph.study
    frames = guided_bilateral_filter(s.frames, s.spacing)
    return dataclasses.replace(ph, study=dataclasses.replace(s, frames=frames))


@pytest.fixture(scope="module")
def results(ph):
    return {m: compute_maps(ph.study, method=m) for m in MODEL_METHODS}


def test_every_method_gives_plausible_and_different_maps(ph, results):
    truth = ph.truth.maps
    # The phantom's sinus is partly blood and its VOF's area below the AIF's: the VOF-scaled
    # AIF is that much low, and every CBV that much high (no method can know it).
    expected = 1 / (ph.truth.params["sinus_fill"] * ph.truth.vof_aif_area_ratio)
    for m, r in results.items():
        sel = r.brain & ph.truth.masks["brain"]
        assert sel.sum() > 0.9 * ph.truth.masks["brain"].sum()
        cbv = np.nanmedian(r.maps.cbv[sel] / truth["cbv"][sel]) / expected
        assert 0.8 < cbv < 1.25, (m, cbv)
        assert np.all(np.isnan(r.maps.cbf[~r.brain]))
        # partial volume corrected against the VOF: the scaled AIF has the area the sinus
        # allows (1 / expected of the true AIF's)
        times = ph.study.times
        area = np.trapezoid(r.aif.curve, times) / np.trapezoid(ph.truth.aif, times)
        assert area * expected == pytest.approx(1.0, rel=0.15), (m, area, r.aif.scale)
    names = list(results)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not np.allclose(results[a].maps.cbf, results[b].maps.cbf, equal_nan=True)


def test_baseline_ends_at_the_aifs_arrival(ph, results):
    """The automatic baseline window ends at the AIF's own arrival, not the brain's."""
    arrival = ph.truth.params["input_function"]["arrival_s"]
    for r in results.values():
        end = ph.study.times[r.baseline_frames - 1]
        # ``arrival``: the AIF's first 0.1 % of its peak; a frame later it has barely risen
        assert arrival - 2.0 <= end <= arrival + ph.study.frame_interval, (end, arrival)
        assert r.parameters["baseline_source"] == "aif arrival"


def test_lesion_visible_in_maps(ph, results):
    r, masks = results["bsvd"], ph.truth.masks
    core, healthy = masks["core"] & r.brain, r.brain & ~masks["hypoperfusion"] & ~masks["oligaemia"]
    # unfiltered noisy frames: the noise floor lifts low flows, still well below healthy
    assert np.nanmedian(r.maps.cbf[core]) < 0.6 * np.nanmedian(r.maps.cbf[healthy])
    pen = masks["penumbra"] & r.brain
    assert np.nanmedian(r.maps.tmax[pen]) > np.nanmedian(r.maps.tmax[healthy]) + 4


def test_manual_aif_used_as_given_unless_vof(ph, results, tmp_path):
    auto = results["ssvd"]
    csv = tmp_path / "aif.csv"
    rows = "\n".join(f"{t},{v}" for t, v in zip(ph.study.times, auto.aif.curve, strict=True))
    csv.write_text("time_s,hu\n" + rows)
    r = compute_maps(ph.study, method="ssvd", aif_csv=csv)
    assert r.aif.scale == 1.0 and r.vof is None
    np.testing.assert_allclose(r.maps.cbf, auto.maps.cbf, rtol=1e-3, equal_nan=True)
    vof = np.zeros(ph.study.shape, bool)
    vof[tuple(auto.vof.voxels.T)] = True
    aif = np.zeros(ph.study.shape, bool)
    aif[tuple(auto.aif.voxels.T)] = True
    r2 = compute_maps(ph.study, method="ssvd", aif_mask=aif, vof_mask=vof)
    assert r2.aif.scale == pytest.approx(auto.aif.scale, rel=1e-6)


def test_bad_arguments(ph, tmp_path):
    with pytest.raises(InputError, match="method"):
        compute_maps(ph.study, method="tikhonov")
    with pytest.raises(InputError, match="model-based"):
        compute_maps(ph.study, method="cnn")
    bad = tmp_path / "mask.nii.gz"
    write_nifti_map(np.ones((4, 4, 4), bool), ph.study.affine, bad)
    with pytest.raises(InputError, match="mask.nii.gz: mask shape"):
        compute_maps(ph.study, method="ssvd", mask=bad)
    with pytest.raises(InputError, match="not both"):
        compute_maps(ph.study, aif_mask=bad, aif_csv=bad)


def test_outputs_and_cli(ph, results, tmp_path):
    out = run_study(ph.study, tmp_path / "m", motion=False, filter=False, lesions=False).out
    cbf = nib.load(out / "cbf.nii.gz")
    assert b"mL/100 g/min" in cbf.header["descrip"].tobytes()
    np.testing.assert_allclose(cbf.affine, ph.study.affine)
    run = json.loads((out / "run.json").read_text())
    assert run["parameters"]["method"] == "nlr" and run["timings_s"]["maps.deconvolution"] > 0
    assert run["results"]["maps"]["cbv"]["unit"] == "mL/100 g"
    nlr = results["nlr"].maps.cbv[results["nlr"].brain]
    assert run["results"]["maps"]["cbv"]["median"] == pytest.approx(float(np.median(nlr)), rel=1e-6)
    assert not (out / "core.nii.gz").exists() and not (out / "report.html").exists()
    study = write_nifti_study(ph.study, tmp_path / "ctp.nii.gz")
    runner = CliRunner()
    res = runner.invoke(app, ["maps", str(study), str(tmp_path / "cli"), "--method", "bsvd"])
    assert res.exit_code == 0, res.output
    assert "CBF" in res.stdout and (tmp_path / "cli" / "tmax.nii.gz").exists()
    by_hand = [str(study), str(tmp_path / "hand"), "--no-filter", "--baseline-frames", "5"]
    res = runner.invoke(app, ["maps", *by_hand, "--method", "ssvd"])
    assert res.exit_code == 0, res.output
    maps = json.loads((tmp_path / "hand" / "run.json").read_text())["parameters"]["maps"]
    assert maps["baseline_frames"] == 5 and maps["baseline_source"] == "manual"
    too_many = runner.invoke(app, ["maps", study.as_posix(), str(tmp_path / "y"),
                                   "--baseline-frames", "90"])  # fmt: skip
    assert too_many.exit_code == 2 and "baseline_frames" in too_many.output
    assert not (tmp_path / "y").exists()
    again = runner.invoke(app, ["maps", str(study), str(tmp_path / "cli")])
    assert again.exit_code == 2 and "already exists" in " ".join(again.output.split())
    missing = runner.invoke(app, ["maps", str(tmp_path / "none.nii.gz"), str(tmp_path / "x")])
    assert missing.exit_code == 2 and not (tmp_path / "x").exists()

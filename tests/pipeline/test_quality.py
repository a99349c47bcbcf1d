"""Results carry their quality: caveats on screen, in run.json, volumes.json and the report,
and decision numbers withheld where the maps cannot support a decision."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ctpmaps.cli import app
from ctpmaps.pipeline.quality import AIF_SCALE_PLAUSIBLE, assess

runner = CliRunner()


def _codes(found, severity=None):
    return [c["code"] for c in found if severity is None or c["severity"] == severity]


@pytest.mark.parametrize(
    ("scale", "expected"), [(1.5, None), (AIF_SCALE_PLAUSIBLE[1] + 1, "warn"), (28.36, "withhold")]
)
def test_aif_scale(scale, expected):
    found = assess({"aif_scale": scale, "vof_source": "automatic"}, filtered=True, problems=[])
    assert [c["severity"] for c in found] == ([] if expected is None else [expected])
    manual = assess({"aif_scale": 1.0, "vof_source": None}, filtered=True, problems=[])
    assert manual == []


def test_input_function_search_notes_are_caveats():
    note = "no artery candidate peaks 1 s before the brain's mean curve (at 9.0 s): ..."
    params = {"aif_scale": 1.5, "vof_source": "automatic", "input_function_notes": [note]}
    found = assess(params, filtered=True, problems=[])
    assert _codes(found, "warn") == ["input_function_search"]
    assert found[0]["message"].startswith(note)
    params["aif_scale"] = 28.0  # both reasons reported
    assert _codes(assess(params, filtered=True, problems=[])) == [
        "aif_scale",
        "input_function_search",
    ]


def test_fits_noise_network_and_reading_problems():
    quality = {"noise_hu": 12.0, "tissue_peak_hu": 30.0, "contrast_to_noise": 2.5,
               "frame_interval_s": 0.5, "fit_at_bound_fraction": 0.3,
               "mtt_below_frame_interval_fraction": 0.08}  # fmt: skip
    found = assess({"quality": quality}, filtered=False, problems=["skipped notes.txt"])
    assert _codes(found, "withhold") == ["fit_at_bound"]
    quality |= {"fit_at_bound_mtt_min_fraction": 0.28, "fit_at_bound_delay_max_fraction": 0.02}
    bound = assess({"quality": quality}, filtered=False, problems=[])[0]["message"]
    assert "(the shortest MTT 28 %, the latest arrival 2 %)" in bound
    assert _codes(found, "warn") == ["mtt_below_frame_interval", "noisy_frames"]
    assert _codes(found, "note") == ["reading"]
    assert "noisy_frames" in _codes(assess({"quality": quality}, filtered=True, problems=[]))
    quality["contrast_to_noise"] = 8.0  # fine once filtered, not for raw frames
    assert "noisy_frames" not in _codes(assess({"quality": quality}, filtered=True, problems=[]))
    assert "noisy_frames" in _codes(assess({"quality": quality}, filtered=False, problems=[]))
    net = {"validation_caveat": "U-Net maps from models validated only on a phantom (CBV: ...)"}
    found = assess(net, filtered=True, problems=[])
    assert _codes(found, "withhold") == ["phantom_only_network"] and "CBV" in found[0]["message"]
    assert assess({"validation_caveat": None}, filtered=True, problems=[]) == []


def test_maps_on_raw_frames_say_so(small_stroke_files, tmp_path):
    out = tmp_path / "raw"
    args = ["maps", str(small_stroke_files / "ctp.nii.gz"), str(out), "--no-filter"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "caveat (warn): the frames were not filtered and have a noise of" in text
    caveats = json.loads((out / "run.json").read_text())["results"]["caveats"]
    assert "noisy_frames" in _codes(caveats)
    res = runner.invoke(app, ["maps", str(small_stroke_files / "ctp.nii.gz"), str(tmp_path / "f")])
    assert res.exit_code == 0 and "noisy_frames" not in res.output  # filtered by default


def test_cnn_decision_is_withheld(small_stroke_files, tmp_path):
    out = tmp_path / "cnn"
    res = runner.invoke(
        app, ["run", str(small_stroke_files / "ctp.nii.gz"), str(out), "--method", "cnn",
              "--no-motion", "--no-dicom"]
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "NOT FOR A TREATMENT DECISION" in text and "withheld" in text
    assert "caveat (withhold): U-Net maps from models validated only on a phantom" in text
    volumes = json.loads((out / "volumes.json").read_text())
    assert volumes["decision"]["supported"] is False
    assert volumes["decision"]["withheld_because"] == ["phantom_only_network"]
    html = (out / "report.html").read_text()
    assert 'class="flag withheld">withheld<' in html and 'id="caveats"' in html

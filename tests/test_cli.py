"""The command line: exit codes, outputs and messages."""

from __future__ import annotations

import json

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

"""A user's files are never lost, and an unusable output location fails at once: one line,
exit code 2, before anything is read or computed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ctpmaps.cli import app

runner = CliRunner()


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def no_work(monkeypatch):
    """Fails the test if a study is read (the first step of any computation)."""

    def refuse(*args, **kwargs):
        raise AssertionError("the study was read: the check came too late")

    monkeypatch.setattr("ctpmaps.pipeline.load.load_study", refuse)


def test_study_inside_the_output_folder_is_never_deleted(small_stroke_files, tmp_path, no_work):
    danger = tmp_path / "danger"
    shutil.copytree(small_stroke_files / "dicom", danger / "dicom")
    (danger / "notes.txt").write_text("my notes")
    before = _files(danger)
    for args in (["run", str(danger / "dicom"), str(danger), "--overwrite"],
                 ["run", str(danger / "dicom"), str(danger)],
                 ["preprocess", str(danger / "dicom"), str(danger), "--overwrite"],
                 ["maps", str(danger / "dicom"), str(danger / "dicom" / "maps")]):  # fmt: skip
        res = runner.invoke(app, args)
        assert res.exit_code == 2, res.output
        assert len(res.output.strip().splitlines()) == 1 and "input" in res.output
    assert _files(danger) == before


@pytest.mark.parametrize("where", ["under_a_file", "a_file", "read_only", "theirs"])
def test_unusable_output_location_fails_first(small_stroke_files, tmp_path, where, no_work):
    (tmp_path / "file").write_text("x")
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "keep.txt").write_text("theirs")
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    out = {
        "under_a_file": tmp_path / "file" / "out",
        "a_file": tmp_path / "file",
        "read_only": (ro if os.geteuid() != 0 else Path("/sys/ctpmaps")) / "out",
        "theirs": tmp_path / "theirs",
    }[where]
    study = str(small_stroke_files / "ctp.nii.gz")
    for cmd in ("run", "maps", "preprocess", "predict"):
        res = runner.invoke(app, [cmd, study, str(out), "--overwrite"])
        assert res.exit_code == 2, (cmd, res.output)
        assert len(res.output.strip().splitlines()) == 1 and str(out) in res.output
        assert "Traceback" not in res.output
    assert (tmp_path / "file").read_text() == "x"
    assert _files(tmp_path / "theirs") == {"keep.txt": b"theirs"}


def test_an_option_of_another_method_fails_first(small_stroke_files, tmp_path, no_work):
    """``--neighbourhood-mtt`` belongs to the NLR: with another method, one line naming it,
    exit code 2, nothing read and no output folder."""
    study = str(small_stroke_files / "ctp.nii.gz")
    for cmd in ("run", "maps"):
        out = tmp_path / cmd
        res = runner.invoke(app, [cmd, study, str(out), "--method", "ssvd", "--neighbourhood-mtt"])
        assert res.exit_code == 2, (cmd, res.output)
        assert "neighbourhood_mtt" in res.output and "ssvd" in res.output
        assert "Traceback" not in res.output and not out.exists()


def test_overwrite_replaces_only_what_ctpmaps_wrote(small_stroke_files, tmp_path):
    out = tmp_path / "out"
    out.mkdir()  # an empty folder is fine
    args = ["maps", str(small_stroke_files / "ctp.nii.gz"), str(out), "--method", "ssvd",
            "--no-filter"]  # fmt: skip
    assert runner.invoke(app, args).exit_code == 0
    (out / "my_roi.nii.gz").write_bytes(b"the user's")
    first = (out / "cbf.nii.gz").stat().st_mtime_ns
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and "--overwrite" in res.output
    res = runner.invoke(app, [*args, "--overwrite"])
    assert res.exit_code == 0, res.output
    assert (out / "my_roi.nii.gz").read_bytes() == b"the user's"
    assert (out / "cbf.nii.gz").stat().st_mtime_ns >= first
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]


# The child process stops inside the report stage (after maps, NIfTI and DICOM are staged)
# until it is signalled, so the test does not depend on how fast the machine is.
_HOLD_IN_REPORT = """
import sys, time
import ctpmaps.pipeline.outputs as outputs
def _hold(*args, **kwargs):
    print("holding in the report stage", flush=True)
    time.sleep(600)
outputs._report = _hold
from ctpmaps.cli import app
app(prog_name="ctpmaps", args=sys.argv[1:])
"""


def test_sigterm_removes_partial_outputs(small_stroke_files, tmp_path):
    import signal
    import subprocess
    import sys

    out = tmp_path / "out"
    cmd = [sys.executable, "-c", _HOLD_IN_REPORT, "run", str(small_stroke_files / "dicom"),
           str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "holding in the report stage" in line:
            break
    assert list(tmp_path.glob(".out.ctpmaps-partial.*")), "".join(seen)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, "".join(seen) + output
    assert list(tmp_path.iterdir()) == [], "partial outputs left behind"

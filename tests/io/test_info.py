"""``ctpmaps info`` on what the readers refuse or read: one line, no traceback, strict JSON.

Runs the command as a user does (``python -m ctpmaps``), so that whatever the command
line layer becomes, what the readers hand it is checked end to end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ctpmaps.io.testing.mutations import set_raw
from ctpmaps.io.testing.samples import write_samples

SRC = Path(__file__).resolve().parents[2] / "src"


def _info(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run(
        [sys.executable, "-m", "ctpmaps", "info", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> dict[str, Path]:
    return write_samples(tmp_path_factory.mktemp("samples"), jpeg=False)


def test_malformed_number_of_frames_is_one_line(samples):
    bad = sorted(samples["dicom"].iterdir())[4]
    set_raw(bad, "NumberOfFrames", b"1O")
    done = _info(str(samples["dicom"]))
    assert done.returncode == 2
    assert "Traceback" not in done.stdout + done.stderr
    assert bad.name in done.stderr and "NumberOfFrames" in done.stderr


def test_json_is_strict_and_without_identifiers(samples, tmp_path):
    side = samples["nifti"].with_name("ctp.json")
    meta = json.loads(side.read_text())
    side.write_text(json.dumps({**meta, "PatientName": "Doe^Jane", "Huge": 1e308}))
    done = _info("--json", str(samples["nifti"]))
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout, parse_constant=lambda name: pytest.fail(name))
    assert summary["n_frames"] == 5 and summary["metadata"]["Huge"] == 1e308
    assert "Doe^Jane" not in done.stdout

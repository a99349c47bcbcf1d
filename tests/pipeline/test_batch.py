"""``ctpmaps batch`` on dask.distributed: failures listed and the others done, resumable
after SIGKILL to identical outputs, and on a separately started scheduler and workers."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from ctpmaps.cli import app

runner = CliRunner()
FAST = ["--no-motion", "--no-dicom", "--no-report", "--method", "ssvd"]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Four small phantom studies and one corrupted one."""
    from ctpmaps.phantom import PhantomConfig, acquisition_preset
    from ctpmaps.phantom.write import write_cohort

    root = tmp_path_factory.mktemp("cohort")
    cfg = PhantomConfig(acquisition=acquisition_preset("seed", matrix=48), normal_fraction=0.0)
    write_cohort(root, n_patients=4, seed=5, config=cfg, workers=1)
    (root / "MOL-bad").mkdir()
    (root / "MOL-bad" / "1.dcm").write_bytes(b"not dicom")
    return root


def _rows(folder: Path) -> dict[str, dict]:
    with open(folder / "cohort_summary.csv") as fh:
        return {r["study"]: r for r in csv.DictReader(fh)}


def _maps(folder: Path) -> dict[str, np.ndarray]:
    return {
        str(p.relative_to(folder)): np.asarray(nib.load(p).dataobj)
        for p in sorted(folder.glob("*/*.nii.gz"))
    }


def test_failures_listed_others_done_and_skipped_on_rerun(cohort, tmp_path):
    out = tmp_path / "b"
    res = runner.invoke(app, ["batch", str(cohort), str(out), *FAST])
    assert res.exit_code == 0, res.output
    rows = _rows(out)
    assert [r["status"] for r in rows.values()] == ["done"] * 4 + ["failed"]
    assert "not a DICOM file" in rows["MOL-bad"]["error"]
    assert all(float(rows[f"MOL-00{i}"]["hypoperfusion_ml"]) > 0 for i in range(1, 5))
    assert "MOL-bad" in (out / "cohort_summary.html").read_text()
    again = runner.invoke(app, ["batch", str(cohort), str(out), *FAST])
    assert again.exit_code == 0, again.output
    assert [r["status"] for r in _rows(out).values()] == ["skipped (complete)"] * 4 + ["failed"]


def _wait_until_gone(group: int, timeout: float = 60.0) -> None:
    """Wait until no process of the process group ``group`` runs (zombies aside): SIGKILL is
    delivered asynchronously, and a loaded machine may still show a dying worker as running,
    whose staging folder the resumed run then rightly leaves alone."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        alive = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == group and fields[0] not in ("Z", "X"):
                alive.append(stat.parent.name)
        if not alive:
            return
        time.sleep(0.2)
    raise AssertionError(f"processes of group {group} still run after SIGKILL: {alive}")


def test_killed_batch_resumes_to_identical_outputs(cohort, tmp_path):
    ref = tmp_path / "ref"
    assert runner.invoke(app, ["batch", str(cohort), str(ref), *FAST]).exit_code == 0
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "ctpmaps", "batch", str(cohort), str(out), *FAST]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 240
    while time.time() < deadline and not list(out.glob("MOL-00*/run.json")):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the batch and its dask workers, mid-run
    proc.wait()
    _wait_until_gone(proc.pid)
    done_before = len(list(out.glob("MOL-00*/run.json")))
    assert 1 <= done_before < 4
    res = runner.invoke(app, ["batch", str(cohort), str(out), *FAST])
    assert res.exit_code == 0, res.output
    rows = _rows(out)
    assert sum(r["status"] == "skipped (complete)" for r in rows.values()) == done_before
    assert sum(r["status"] == "done" for r in rows.values()) == 4 - done_before
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no staging left
    a, b = _maps(ref), _maps(out)
    assert a.keys() == b.keys() and len(a) > 20
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_separately_started_scheduler_and_two_workers(cohort, tmp_path):
    dask = shutil.which("dask", path=str(Path(sys.executable).parent)) or shutil.which("dask")
    if dask is None:
        pytest.skip("the dask command line is not installed")
    file = tmp_path / "scheduler.json"
    env = {**os.environ, "DASK_LOGGING__DISTRIBUTED": "warning"}
    procs = [subprocess.Popen([dask, "scheduler", "--scheduler-file", str(file), "--port", "0",
                               "--no-dashboard"], env=env, start_new_session=True)]  # fmt: skip
    try:
        deadline = time.time() + 60
        while not file.exists() and time.time() < deadline:
            time.sleep(0.2)
        for _ in range(2):
            procs.append(subprocess.Popen(
                [dask, "worker", "--scheduler-file", str(file), "--nthreads", "1",
                 "--no-dashboard"], env=env, start_new_session=True,
            ))  # fmt: skip
        out = tmp_path / "ext"
        res = runner.invoke(app, ["batch", str(cohort), str(out), "--scheduler", str(file), *FAST])
        assert res.exit_code == 0, res.output
        assert [r["status"] for r in _rows(out).values()] == ["done"] * 4 + ["failed"]
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            p.wait(timeout=30)

"""Every command of the README runs as written, in order, from an empty folder."""

from __future__ import annotations

import re
import shlex
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ctpmaps.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_commands() -> list[str]:
    """The ``ctpmaps ...`` lines of the README's ``sh`` blocks, in order."""
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.S)
    return [line.strip() for b in blocks for line in b.splitlines()
            if line.strip().startswith("ctpmaps ")]  # fmt: skip


def readme_python() -> str:
    """The README's Python example."""
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)[0]


@pytest.mark.slow
def test_readme_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    commands = readme_commands()
    assert len(commands) >= 12
    runner = CliRunner()
    for line in commands:
        t0 = time.perf_counter()
        res = runner.invoke(app, shlex.split(line)[1:])
        assert res.exit_code == 0, f"{line}\n{res.output}"
        print(f"{time.perf_counter() - t0:6.1f} s  {line}")
    exec(compile(readme_python(), "README.md", "exec"), {})

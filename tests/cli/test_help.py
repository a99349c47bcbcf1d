"""Help that reads like the field's command-line tools: plain, one sentence per option,
named arguments, rounded defaults; the exit codes documented; docs/methods.md current."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ctpmaps.cli import app
from ctpmaps.errors import EXIT_CODES
from ctpmaps.perfusion.methods import methods_markdown

runner = CliRunner()
COMMANDS = [
    "run",
    "maps",
    "batch",
    "preprocess",
    "predict",
    "train",
    "phantom",
    "info",
    "demo",
    "methods",
]
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("command", COMMANDS)
def test_plain_help(command):
    res = runner.invoke(app, [command, "--help"], terminal_width=100)
    assert res.exit_code == 0, res.output
    text = res.output
    assert "<bool>" not in text and "{" not in text and "╭" not in text
    assert not re.search(r"\d\.\d{5,}", text), "unrounded default"
    usage = text.splitlines()[0]
    assert usage.startswith(f"Usage: ctpmaps {command} [OPTIONS]")
    assert usage == usage.upper().replace("USAGE: CTPMAPS", "Usage: ctpmaps").replace(
        command.upper(), command
    ).replace("[OPTIONS]", "[OPTIONS]")  # arguments named in capitals
    assert "[default: (" not in text


def test_exit_codes_documented():
    text = " ".join(runner.invoke(app, ["--help"]).output.split())
    for code in EXIT_CODES:
        assert f"{code} " in text
    readme = (ROOT / "README.md").read_text()
    for code, meaning in EXIT_CODES.items():
        assert f"| {code} | {meaning} |" in readme


def test_methods_doc_is_current():
    assert (ROOT / "docs" / "methods.md").read_text() == methods_markdown()
    res = runner.invoke(app, ["methods", "--markdown"])
    assert res.output == methods_markdown()


def test_errors_speak_the_command_line(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x.txt").write_text("theirs")
    for args in (["info", str(tmp_path / "none.nii.gz")],
                 ["run", str(tmp_path / "none.nii.gz"), str(tmp_path / "o")],
                 ["maps", str(tmp_path), str(tmp_path / "out")]):  # fmt: skip
        res = runner.invoke(app, args)
        assert res.exit_code == 2
        assert "=True" not in res.output and "pass " not in res.output
        assert res.output.strip().splitlines()[-1].startswith("error: ")

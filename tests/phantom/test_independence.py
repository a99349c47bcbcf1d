"""The phantom is an independent truth: it imports no fitting or processing code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import ctpmaps.phantom

PHANTOM = Path(ctpmaps.phantom.__file__).parent
#: Stages the phantom must never import (it may use io, errors and physics constants).
FORBIDDEN = ("perfusion", "lesion", "preprocess", "nn", "pipeline", "cli", "evaluation", "report")
#: The only names the phantom may take from ``ctpmaps.physics``: documented constants.
PHYSICS_ALLOWED = {
    "HCT_LARGE_VESSEL",
    "HCT_SMALL_VESSEL",
    "HEMATOCRIT_FACTOR",
    "BRAIN_DENSITY",
    "FLOW_UNIT",
    "MAP_UNITS",
}


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(absolute module, imported names) of every import in a phantom module."""
    package = ["ctpmaps", "phantom"]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            out.append((module, [alias.name for alias in node.names]))
    return out


MODULES = sorted(PHANTOM.glob("*.py"))


def test_modules_found():
    assert len(MODULES) >= 10 and any(p.name == "forward.py" for p in MODULES)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_forbidden_import(path):
    for module, names in _imports(path):
        parts = module.split(".")
        if parts[0] != "ctpmaps":
            continue
        stage = parts[1] if len(parts) > 1 else ""
        for name in names if not stage else [stage]:
            assert name not in FORBIDDEN, f"{path.name} imports {module}.{name}"
        assert stage not in FORBIDDEN, f"{path.name} imports {module}"
        if stage == "physics":
            assert not set(names) - PHYSICS_ALLOWED, f"{path.name}: {module} {names}"


def test_the_checker_catches_forbidden_imports(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from ..physics import residue\n"
        "from ..perfusion import svd\n"
        "import ctpmaps.lesion.segment\n"
    )
    found = _imports(bad)
    assert ("ctpmaps.physics", ["residue"]) in found
    assert ("ctpmaps.perfusion", ["svd"]) in found
    assert ("ctpmaps.lesion.segment", []) in found
    with pytest.raises(AssertionError):
        test_no_forbidden_import(bad)

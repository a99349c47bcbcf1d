"""Derived arrays cached as safetensors, keyed so that a stale entry is never served.

A key joins the source files' stamps (path, size, modification time), the settings and a
checksum of the code that made the arrays (`code_stamp`): a changed file, setting, filter
or fit rebuilds the entry. Entries are written atomically; a damaged one is rebuilt.
"""

from __future__ import annotations

import ast
import hashlib
import json
import logging
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from ..io.atomic import atomic_path

__all__ = [
    "INPUT_CODE",
    "NLR_CODE",
    "cache_key",
    "code_stamp",
    "source_digest",
    "file_stamp",
    "cached",
]

log = logging.getLogger(__name__)


def cache_key(*parts: object) -> str:
    """16 hex digits of SHA-256 over ``parts`` (as strings)."""
    return hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).hexdigest()[:16]


def code_stamp(*modules: str) -> str:
    """SHA-256 of the code of ``modules`` (dotted names under ``ctpmaps``, or packages):
    a cache entry is rebuilt when the code that made it changes (`source_digest`: not
    when only its docstrings, comments or layout do)."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for name in modules:
        path = root.joinpath(*name.split("."))
        files = sorted(path.glob("*.py")) if path.is_dir() else [path.with_suffix(".py")]
        for f in files:
            st = f.stat()
            h.update(_memo_digest(str(f), st.st_size, st.st_mtime_ns).encode())
    return h.hexdigest()[:16]


@lru_cache(maxsize=256)
def _memo_digest(path: str, size: int, mtime_ns: int) -> str:
    """`source_digest`, read again when the file's size or time changes."""
    return source_digest(path)


def source_digest(path: str | Path) -> str:
    """SHA-256 of a Python file's syntax tree without its docstrings: the same for two
    versions that differ only in docstrings, comments or layout, which cannot change what
    the code computes (editing a docstring of the NLR rebuilt every cohort's NLR targets,
    about ten minutes per 180 patients, in the middle of a training experiment)."""
    tree = ast.parse(Path(path).read_bytes(), filename=str(path))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree, include_attributes=False).encode()).hexdigest()


#: Code behind each cached array: the training inputs, and the NLR targets fitted on them.
INPUT_CODE = ("preprocess.bilateral", "preprocess.brainmask", "nn.normalise", "io.nifti")
NLR_CODE = (*INPUT_CODE, "pipeline", "perfusion")


def file_stamp(path: Path) -> str:
    """``resolved path:size:mtime_ns`` of a file."""
    st = path.stat()
    return f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"


def cached(
    cache_dir: Path | None, name: str, make: Callable[[], dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """``cache_dir / name`` if readable, else ``make()`` written there; no cache: ``make()``."""
    if cache_dir is None:
        return make()
    path = cache_dir / name
    if path.is_file():
        try:
            return load_file(path)
        except Exception as exc:  # a damaged cache entry is rebuilt, not trusted
            log.warning("%s: unreadable cache entry rebuilt (%s)", path, exc)
    arrays = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp))
    return arrays

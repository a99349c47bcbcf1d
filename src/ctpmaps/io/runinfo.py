"""``run.json``: how an output folder was made (version, command, parameters, timings,
checksums of the inputs)."""

from __future__ import annotations

import datetime
import hashlib
import json
import platform
import resource
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_path

__all__ = ["checksum", "write_run_json"]


def checksum(path: str | Path) -> str:
    """SHA-256 of a file, or of a folder's files (sorted relative names and contents)."""
    path = Path(path)
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_run_json(
    out: str | Path,
    *,
    inputs: dict[str, str | Path | None],
    parameters: dict[str, Any],
    timings_s: dict[str, float],
    results: dict[str, Any] | None = None,
) -> Path:
    """Write ``out/run.json``; inputs that are paths get their SHA-256. ``peak_memory_gb``
    is the process's peak resident memory so far (the run's, for one run per process)."""
    from .. import __version__

    record = {
        "ctpmaps_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": sys.argv,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "inputs": {
            k: {"path": str(v), "sha256": checksum(v)}
            if v is not None and Path(v).exists()
            else None
            for k, v in inputs.items()
        },
        "parameters": parameters,
        "timings_s": {k: round(float(v), 3) for k, v in timings_s.items()},
        "peak_memory_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 3),
        "results": results or {},
    }
    path = Path(out) / "run.json"
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=1, default=_default))
    return path

"""UIDs of the objects ctpmaps writes: fresh, or derived from a seed so reruns agree."""

from __future__ import annotations

import hashlib

import numpy as np
from pydicom.uid import generate_uid

from ..study import Study

__all__ = ["UID_PREFIX", "new_uid", "content_seed"]

#: Root of generated UIDs (pydicom's registered root).
UID_PREFIX = "1.2.826.0.1.3680043.8.498."


def new_uid(seed: str | None, *parts: object, prefix: str | None = None) -> str:
    """A fresh UID, or a deterministic one derived from ``seed`` and ``parts``."""
    if seed is None:
        return generate_uid(prefix=prefix or UID_PREFIX)
    return generate_uid(prefix=prefix or UID_PREFIX, entropy_srcs=[str(seed), *map(str, parts)])


def content_seed(study: Study) -> str:
    """A stable seed from the frames' content (sampled), affine and times."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(study.frames[::7, ::7, :, :: max(1, study.n_frames // 8)]).data)
    h.update(np.asarray(study.affine, np.float64).tobytes())
    h.update(np.asarray(study.times, np.float64).tobytes())
    return h.hexdigest()

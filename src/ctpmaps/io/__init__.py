"""Reading studies (DICOM, NIfTI, UniToBrain layout) and writing outputs."""

from __future__ import annotations

from .study import SOURCE_KINDS, Study

__all__ = ["Study", "SOURCE_KINDS"]

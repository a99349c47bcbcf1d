"""DICOM input and output: CT perfusion series in, CT series, Parametric Maps and SEG out.

Modules, in the order the data flows:

- `headers` (with `times`, `codecs`): what each file of a folder holds, without pixels;
- `series`, `order`: which series is the perfusion series, slices, frames in time order;
- `read`: the pixel pass and the public readers;
- `attributes`, `geometry`, `uids`: what every written image carries;
- `write`: CT series; `reference`, `export`: Parametric Maps and SEG referencing the source.
"""

from __future__ import annotations

from .codecs import COMPRESSIONS
from .export import export_dicom
from .read import Volume, read_dicom_study, read_dicom_volume
from .write import write_dicom_study, write_dicom_volume

__all__ = [
    "read_dicom_study",
    "read_dicom_volume",
    "Volume",
    "write_dicom_study",
    "write_dicom_volume",
    "COMPRESSIONS",
    "export_dicom",
]

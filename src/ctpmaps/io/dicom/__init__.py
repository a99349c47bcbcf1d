"""DICOM input and output: CT perfusion series in, CT series, Parametric Maps and SEG out.

Modules, in the order the data flows:

- reading: `headers` (what each file of a folder holds, without pixels; with `values`,
  `image`, `enhanced`, `times`, `codecs`), `series` (which series is the perfusion
  series), `order` (frames in time order), `metadata`, `pixels` (the pixel pass) and
  `read` (the public readers); `source` (what a study keeps of its source images);
- writing: `geometry`, `uids`, `attributes` (what every written image carries), `derived`
  (the source's identity and references), `privacy` (de-identification), `write` (CT
  series), `reference` and `export` (Parametric Maps and SEG).

No module imports one later in its list than itself but for the public names re-exported
here.
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

"""Lesion outputs on disk: NIfTI masks, a label map, hemispheres, ``volumes.json`` and
``volumes.csv``, each written atomically."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .atomic import atomic_path
from .nifti import write_nifti_map

if TYPE_CHECKING:  # the writer takes the lesion stage's results; io does not depend on it
    from ..lesion import Lesions, Midline

__all__ = ["CSV_FIELDS", "write_lesion_outputs"]

#: Columns of ``volumes.csv`` (one row per study).
CSV_FIELDS = (
    "patient_id",
    "core_ml",
    "penumbra_ml",
    "hypoperfusion_ml",
    "severe_hypoperfusion_ml",
    "mismatch_ml",
    "mismatch_ratio",
    "hypoperfusion_intensity_ratio",
    "target_mismatch",
    "affected_side",
    "rule",
    "supported",
)


def write_lesion_outputs(
    out_dir: str | Path,
    lesions: Lesions,
    decision: dict[str, Any],
    midline: Midline,
    affine: np.ndarray,
    *,
    patient_id: str | None = None,
) -> dict[str, Path]:
    """Write the lesion masks and numbers of one study into ``out_dir``.

    Files: ``core``, ``penumbra``, ``hypoperfusion`` (and ``severe_hypoperfusion``)
    ``.nii.gz`` (uint8 0/1); ``lesions.nii.gz`` (1 penumbra, 2 core); ``hemispheres.nii.gz``
    (1 right, 2 left); ``volumes.json`` (volumes in mL, decision numbers, criteria, midline);
    ``volumes.csv`` (`CSV_FIELDS`, an infinite mismatch ratio written ``inf``;
    ``supported`` False when the run's caveats withhold the decision numbers).

    Returns
    -------
    dict
        Name -> path of every file written.
    """
    out_dir = Path(out_dir)
    files: dict[str, Path] = {}
    for name, mask in lesions.masks().items():
        files[name] = write_nifti_map(mask, affine, out_dir / f"{name}.nii.gz", description=name)
    labels = np.zeros(lesions.core.shape, np.uint8)
    labels[lesions.penumbra] = 1
    labels[lesions.core] = 2
    files["lesions"] = write_nifti_map(
        labels, affine, out_dir / "lesions.nii.gz", description="1 penumbra, 2 core"
    )
    files["hemispheres"] = write_nifti_map(
        lesions.hemispheres, affine, out_dir / "hemispheres.nii.gz", description="1 right, 2 left"
    )
    record = {
        "patient_id": patient_id,
        "units": "mL",
        "volumes_ml": {k: round(v, 3) for k, v in lesions.volumes_ml().items()},
        "decision": decision,
        "criteria": lesions.criteria.as_dict(),
        "reference": lesions.reference,
        "midline": midline.as_dict(),
        "voxel_ml": lesions.voxel_ml,
    }
    with atomic_path(out_dir / "volumes.json") as path:
        path.write_text(json.dumps(record, indent=1, default=str))
    files["volumes_json"] = out_dir / "volumes.json"
    row = {k: decision.get(k) for k in CSV_FIELDS}
    row["patient_id"] = patient_id or ""
    if decision.get("mismatch_ratio_infinite"):
        row["mismatch_ratio"] = "inf"
    with atomic_path(out_dir / "volumes.csv") as path, open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    files["volumes_csv"] = out_dir / "volumes.csv"
    return files

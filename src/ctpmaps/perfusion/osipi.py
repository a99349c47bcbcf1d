"""OSIPI's DSC deconvolution reference data (14 gamma-residue cases) and its pass rule.

The data are not shipped (``../shared/reference/osipi_dsc/`` in development): OSIPI
DCE-DSC-MRI Code Collection, Apache-2.0, curves simulated with
arthur-chakwizira/BezierCurveDeconvolution. Their convention, ``C_tis = dt (C_aif ⊛ R)``,
``CBF = 6000 max(R)``, ``CBV = 100 ∫C_tis / ∫C_aif``, is ours with hematocrit factor and
density 1. Used by ``tests/perfusion/test_osipi.py`` and ``benchmarks/osipi_table.py``.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

__all__ = ["RULE", "read_osipi_cases", "osipi_passes"]

#: OSIPI's tolerances (``numpy.testing.assert_allclose``): map -> (rtol, atol).
RULE = {"cbv": (0.1, 1.0), "cbf": (0.1, 15.0)}


def read_osipi_cases(folder: str | Path) -> list[dict]:
    """The cases of ``folder/dsc_data.csv``: label, tissue and AIF curves, times (s), and
    reference CBV (mL/100 mL) and CBF (mL/100 mL/min)."""
    with open(Path(folder) / "dsc_data.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    cases = []
    for r in rows:
        tis = np.array(r["C_tis"].split(), float)
        cases.append(
            {
                "label": r["label"],
                "tissue": tis,
                "aif": np.array(r["C_aif"].split(), float),
                "times": np.arange(tis.size) * float(r["tr"]),
                "cbv": float(r["cbv"]),
                "cbf": float(r["cbf"]),
            }
        )
    return cases


def osipi_passes(measured: float, reference: float, key: str) -> bool:
    """OSIPI's criterion for map ``key`` ("cbv" or "cbf"):
    ``|measured - reference| <= atol + rtol * |reference|``."""
    rtol, atol = RULE[key]
    return abs(measured - reference) <= atol + rtol * abs(reference)

"""Patient-wise splits: a held-out test set, then k-fold cross-validation on the rest.

Slices of one patient are never split between sets (they share anatomy, noise and
haemodynamics: a slice-wise split leaks). The seed kept 15 of 115 patients for testing and
ran threefold cross-validation on the other 100; other cohort sizes keep the same fraction.
``k = 1`` is a single train/validation split (a third of the non-test patients validate, the
size of a threefold CV's fold): one model instead of k, for experiments that train many.
The split is a JSON file (``splits.json``) and is reproducible from its seed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..io.atomic import atomic_path

__all__ = ["TEST_FRACTION", "make_splits", "write_splits", "read_splits", "check_splits"]

#: Share of patients held out for testing (the seed: 15 of 115).
TEST_FRACTION = 15 / 115


def make_splits(
    patients: Sequence[str],
    *,
    k: int = 3,
    test_fraction: float = TEST_FRACTION,
    seed: int = 0,
) -> dict[str, Any]:
    """Split patients into a test set and ``k`` folds, reproducibly.

    Parameters
    ----------
    patients : sequence of str
        Patient identifiers (order does not matter: they are sorted first).
    k : int, optional
        Number of cross-validation folds (>= 2), or 1 for a single split whose validation
        set is a third of the non-test patients.
    test_fraction : float, optional
        Share of patients held out, rounded to the nearest patient, at least 1 when the
        fraction is positive (``0`` holds none out).
    seed : int, optional
        Seed of the shuffle.

    Returns
    -------
    dict
        ``{"seed", "k", "test_fraction", "patients", "test": [...], "folds": [{"train":
        [...], "val": [...]}, ...]}``; fold ``i`` validates on the ``i``-th of ``k`` near
        equal parts of the non-test patients and trains on the others.

    Raises
    ------
    InputError
        Duplicate patients, a bad ``k`` or fraction, or too few patients for one
        validation patient per fold.

    Examples
    --------
    >>> s = make_splits([f"P{i:03d}" for i in range(115)], seed=1)
    >>> len(s["test"]), [len(f["val"]) for f in s["folds"]]
    (15, [34, 33, 33])
    """
    ids = sorted(str(p) for p in patients)
    if len(set(ids)) != len(ids):
        raise InputError("patients", "expected unique patient identifiers, found duplicates")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InputError("folds", f"expected an integer k >= 1, got {k!r}")
    if not 0.0 <= float(test_fraction) < 1.0:
        raise InputError("test_fraction", f"expected a value in [0, 1), got {test_fraction!r}")
    n_test = int(round(len(ids) * float(test_fraction)))
    if test_fraction > 0:
        n_test = max(1, n_test)
    need = max(k, 2)  # a single split needs one patient to train and one to validate
    if len(ids) - n_test < need:
        raise InputError(
            "patients",
            f"{len(ids)} patients: expected at least {n_test + need} "
            f"({n_test} for testing and {need} to train and validate)",
        )
    order = np.random.default_rng(seed).permutation(len(ids))
    shuffled = [ids[i] for i in order]
    test, rest = sorted(shuffled[:n_test]), shuffled[n_test:]
    parts = [
        sorted(p.tolist()) for p in np.array_split(np.array(rest, dtype=object), k if k > 1 else 3)
    ]
    if k == 1:  # the first third validates, the rest trains
        parts = [parts[0], sorted(p for part in parts[1:] for p in part)]
    folds = [
        {"train": sorted(p for j, part in enumerate(parts) if j != i for p in part), "val": val}
        for i, val in enumerate(parts)
    ][:k]
    return {
        "seed": int(seed),
        "k": k,
        "test_fraction": float(test_fraction),
        "patients": ids,
        "test": test,
        "folds": folds,
    }


def check_splits(splits: dict[str, Any], source: str | Path = "splits") -> dict[str, Any]:
    """Check that a split is patient-wise: no patient in two of test, train and validation
    of a fold, and the folds' validation sets disjoint and covering the non-test patients
    (a single split: train and validation partition them).

    Raises
    ------
    InputError
        Naming ``source`` and the first problem found.
    """
    try:
        patients = set(splits["patients"])
        test = set(splits["test"])
        folds = splits["folds"]
        vals = [set(f["val"]) for f in folds]
        trains = [set(f["train"]) for f in folds]
    except (KeyError, TypeError) as exc:
        raise InputError(source, f"not a split: missing or malformed {exc}") from None
    rest = patients - test
    if not test <= patients:
        raise InputError(source, "test patients missing from the patient list")
    for i, (tr, va) in enumerate(zip(trains, vals, strict=True)):
        if tr & va or (tr | va) & test or (tr | va) != rest or not va:
            raise InputError(source, f"fold {i}: train and validation not a patient-wise split")
    if len(folds) > 1 and (sum(len(v) for v in vals) != len(rest) or set().union(*vals) != rest):
        raise InputError(source, "validation sets do not partition the non-test patients")
    return splits


def write_splits(path: str | Path, splits: dict[str, Any]) -> Path:
    """Write a split as JSON (atomically)."""
    check_splits(splits)
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(splits, indent=1))
    return path


def read_splits(path: str | Path) -> dict[str, Any]:
    """Read and check a split written by `write_splits`."""
    path = Path(path)
    try:
        splits = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(path, f"cannot read the split: {exc}") from exc
    return check_splits(splits, path)

"""The project's exceptions travel between processes (process pools, dask workers)."""

from __future__ import annotations

import pickle

from ctpmaps.errors import FitError, InputError


def test_errors_survive_pickling():
    # an InputError raised in a process pool's worker broke the pool on the way back
    err = pickle.loads(pickle.dumps(InputError("study.nii.gz", "expected 4D, got 3D")))
    assert isinstance(err, InputError) and str(err) == "study.nii.gz: expected 4D, got 3D"
    assert err.source == "study.nii.gz" and err.problem == "expected 4D, got 3D"
    assert str(pickle.loads(pickle.dumps(FitError("no bolus")))) == "no bolus"

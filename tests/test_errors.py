"""The project's exceptions."""

import pickle
from concurrent.futures import ProcessPoolExecutor

import pytest

from ctpmaps.errors import FitError, InputError


def _fail(path: str) -> None:
    raise InputError(path, "not a CT series")


def test_input_error_crosses_a_process_pool():
    # A worker's InputError reaches the parent intact (it broke the pool when it could not
    # be unpickled).
    with ProcessPoolExecutor(1) as pool:
        with pytest.raises(InputError) as info:
            pool.submit(_fail, "a/b.dcm").result()
    assert info.value.source == "a/b.dcm" and info.value.problem == "not a CT series"
    assert str(info.value) == "a/b.dcm: not a CT series"


def test_errors_pickle_with_their_message():
    for err in (InputError("x.nii.gz", "4D expected"), FitError("no bolus")):
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is type(err) and str(back) == str(err)

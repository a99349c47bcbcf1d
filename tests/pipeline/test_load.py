"""The chain's first stage: a study read from a path is held C-ordered, values unchanged."""

import nibabel as nib
import numpy as np

from ctpmaps.clock import Stopwatch
from ctpmaps.io.load import load_study
from ctpmaps.io.nifti import write_nifti_study
from ctpmaps.io.study import Study
from ctpmaps.pipeline.load import load


def test_a_nifti_study_is_read_c_ordered_with_nibabels_values(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.normal(40, 20, (36, 20, 3, 7)).astype(np.float32)
    path = tmp_path / "ctp.nii.gz"
    write_nifti_study(Study(frames, np.diag([0.5, 0.5, 5.0, 1.0]), np.arange(7.0)), path)
    reference = np.asarray(nib.load(path).dataobj, dtype=np.float32)
    assert not reference.flags.c_contiguous  # nibabel reads Fortran-ordered
    as_read = load_study(path)  # reordered while converted
    assert as_read.frames.flags.c_contiguous and as_read.frames.dtype == np.float32
    np.testing.assert_array_equal(as_read.frames, reference)
    study, owned = load(path, None, Stopwatch())
    assert owned and study.frames.flags.c_contiguous and study.frames.dtype == np.float32
    np.testing.assert_array_equal(study.frames, reference)
    np.testing.assert_array_equal(study.times, as_read.times)


def test_a_study_given_as_an_array_is_not_copied():
    given = Study(np.zeros((4, 4, 2, 3), np.float32, order="F"), np.eye(4), np.arange(3.0))
    study, owned = load(given, None, Stopwatch())
    assert study is given and not owned

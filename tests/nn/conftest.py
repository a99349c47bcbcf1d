"""Keep the U-Net tests light on a shared CPU."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """One torch thread for every test (results are bitwise reproducible for a given
    number of threads, and the CPU is shared)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory):
    """Four 64 x 64 x 8 phantom patients of 20 frames, in the phantom and UniToBrain layouts."""
    from ctpmaps.phantom import PhantomConfig, acquisition_preset
    from ctpmaps.phantom.write import write_cohort
    from ctpmaps.pipeline import seed_filter

    out = tmp_path_factory.mktemp("cohort")
    acq = acquisition_preset("seed", matrix=64, n_frames=20, frame_interval_s=2.0)
    write_cohort(
        out,
        n_patients=4,
        seed=3,
        config=PhantomConfig(acquisition=acq),
        formats=("nifti", "unitobrain"),
        workers=1,
        filter_frames=seed_filter,
    )
    return out


@pytest.fixture(scope="session")
def nlr_cohort(tmp_path_factory):
    """Four 128 x 128 x 4 phantom patients of 20 frames (2 s): small enough to train on in
    seconds, fine enough for the automatic AIF of the NLR targets (at 64 x 64 the arteries'
    partial volume defeats it)."""
    from ctpmaps.phantom import PhantomConfig, acquisition_preset
    from ctpmaps.phantom.write import write_cohort

    out = tmp_path_factory.mktemp("nlr-cohort")
    acq = acquisition_preset("seed", matrix=128, n_slices=4, n_frames=20, frame_interval_s=2.0)
    write_cohort(out, n_patients=4, seed=3, config=PhantomConfig(acquisition=acq), workers=1)
    return out

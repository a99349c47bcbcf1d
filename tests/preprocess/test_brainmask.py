"""CT brain mask against the phantom's truth."""

from __future__ import annotations

import numpy as np
import pytest

from ctpmaps.errors import InputError
from ctpmaps.evaluation import dice
from ctpmaps.phantom import PhantomConfig, acquisition_preset, simulate_patient
from ctpmaps.preprocess.brainmask import ct_brain_mask, intracranial_mask


@pytest.fixture(scope="module")
def ph():
    cfg = PhantomConfig(acquisition=acquisition_preset("seed", matrix=128))
    return simulate_patient(cfg, seed=12, normal=False)


def test_mask_matches_truth(ph):
    s, t = ph.study, ph.truth
    mask = ct_brain_mask(s.frames, s.spacing)
    overlap = dice(mask, t.masks["brain"])
    assert overlap > 0.93
    f = t.fractions
    assert (mask & (f.bone > 0.5)).sum() == 0
    assert (mask & (f.air > 0.5)).sum() == 0
    assert (mask & (f.csf > 0.8)).sum() < 0.02 * mask.sum()
    assert (mask & (f.vein > 0.5)).sum() == 0
    assert (mask & (f.artery > 0.5)).sum() <= 2


def test_intracranial_contains_vessels_not_skull(ph):
    s, f = ph.study, ph.truth.fractions
    inside = intracranial_mask(s.frames[..., :3].mean(-1), s.spacing)
    sinus = f.vein > 0.9 * ph.truth.params["sinus_fill"]  # the sinus is not pure blood
    assert sinus.sum() > 10 and inside[sinus].mean() > 0.9
    assert inside[f.artery > 0.5].mean() > 0.9
    assert not inside[f.bone > 0.5].any()


def test_bad_input():
    with pytest.raises(InputError, match="expected \\(x, y, z, t\\)"):
        ct_brain_mask(np.zeros((4, 4, 4)), (1, 1, 1))
    with pytest.raises(InputError, match="spacing"):
        ct_brain_mask(np.zeros((4, 4, 4, 3)), (1, 1))

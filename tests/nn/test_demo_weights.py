"""The shipped demo weights against the phantom's truth on the patients they never saw.

The weights record their cohort (60 patients at 128 x 128, cohort seed 2024) and the
patients held out of training; those patients are simulated again here (patient k's seed
comes from ``SeedSequence(2024).spawn(60)[k - 1]``, as `ctpmaps phantom` draws it), run
through the inference path (filter of the training frames, `predict_maps`) and scored
inside the brain on the normalised [0, 1] scale with the project's metric (`MapErrors`,
summed over the patients, as training and `benchmarks/train_unet.py` score the test set),
beside its constant predictor (the truth's brain mean over those patients). Issue 13 asks
for at most a quarter of the constant's MSE. `ctpmaps evaluate` takes a constant per
patient instead, which is stricter (it leaves out the patients' differences in bolus
timing and perfusion level): by that measure CBV and TTP reach a quarter (checked here);
CBF does not (docs/unet.md, docs/evaluation.md).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from ctpmaps.nn import MapErrors
from ctpmaps.nn.model_info import filter_sigmas_of
from ctpmaps.nn.normalise import normalise_target
from ctpmaps.nn.predict import WEIGHTS_ENV, load_models, predict_maps
from ctpmaps.phantom import PhantomConfig, acquisition_preset, simulate_patient
from ctpmaps.phantom.write import patient_id
from ctpmaps.preprocess import filter_study


@pytest.fixture(scope="module")
def models():
    if os.environ.get(WEIGHTS_ENV):
        pytest.skip(f"${WEIGHTS_ENV} points at other weights than the shipped ones")
    return load_models(device="cpu")


def _held_out_patient(cohort: dict, pid: str):
    """The phantom patient ``pid`` of the cohort the weights were trained on."""
    index = int(pid.split("-")[1])
    seq = np.random.SeedSequence(cohort["phantom_seed"]).spawn(cohort["n_patients"])[index - 1]
    acq = acquisition_preset("seed", matrix=cohort["phantom_matrix"])
    ph = simulate_patient(
        PhantomConfig(acquisition=acq), seed=int(seq.generate_state(1)[0]), patient_id=pid
    )
    assert patient_id(index) == pid
    return ph


@pytest.mark.slow
def test_demo_weights_beat_a_quarter_of_a_constant_on_held_out_patients(models):
    cohort = models[0].meta["cohort"]
    held_out = models[0].meta["metrics"]["test"]["patients"]
    assert all(m.meta["metrics"]["test"]["patients"] == held_out for m in models)
    sigmas = filter_sigmas_of(models)
    errors = {m.target: MapErrors() for m in models}
    per_patient = {m.target: [] for m in models}  # (MSE, the patient's constant's MSE)
    for pid in held_out:
        ph = _held_out_patient(cohort, pid)
        brain = ph.truth.masks["brain"]
        study = filter_study(ph.study, sigma_spatial_mm=sigmas[0], sigma_range_hu=sigmas[1])
        maps = predict_maps(study, models, mask=brain, device="cpu")
        for m in models:
            truth = normalise_target(ph.truth.maps[m.target][brain], m.target)
            pred = normalise_target(getattr(maps, m.target)[brain], m.target)
            errors[m.target].add(pred, truth, np.ones(pred.shape, bool))
            per_patient[m.target].append(
                (np.mean((pred - truth) ** 2), np.mean((truth - truth.mean()) ** 2))
            )
    for target, e in errors.items():
        r = e.result()
        ratio = r["mse_brain"] / r["const_mse_brain"]
        assert ratio <= 0.25, f"{target}: MSE {ratio:.2f} x the constant's"
    mse, const = np.mean(per_patient["cbv"], axis=0)
    assert mse <= 0.25 * const, f"CBV: MSE {mse / const:.2f} x a constant per patient"
    # TTP with the time head (a soft argmax over the frames' times): 0.12 of each patient's
    # own constant here; the sigmoid head with the temporal stem read 0.73, without the
    # stem 1.18 (docs/unet.md, "Time head")
    mse, const = np.mean(per_patient["ttp"], axis=0)
    assert mse <= 0.25 * const, f"TTP: MSE {mse / const:.2f} x a constant per patient"

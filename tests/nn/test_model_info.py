"""What a model's metadata says: filter of its training frames, what it was validated on."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ctpmaps.errors import WeightsError
from ctpmaps.nn import Validation, filter_sigmas_of, load_models, validation_caveat
from ctpmaps.nn.model_info import cohort_kind, training_filter, validation
from ctpmaps.nn.predict import LoadedModel


def _model(name: str, **meta) -> LoadedModel:
    return LoadedModel(net=None, meta={"target": name, **meta}, path=Path(f"{name}.safetensors"))


def _filter(spatial, range_hu):
    return {"method": "guided bilateral", "sigma_spatial_mm": spatial, "sigma_range_hu": range_hu}


def test_filter_of_models_recorded_old_and_disagreeing(caplog):
    a, b = _model("cbv", filter=_filter(2.0, 3.0)), _model("cbf", filter=_filter(2.0, 3.0))
    assert filter_sigmas_of([a, b]) == (2.0, 3.0)
    with caplog.at_level(logging.INFO, logger="ctpmaps.nn.model_info"):
        assert training_filter({}, "old.safetensors") == (3.0, 20.0)
    assert (
        "old.safetensors records no filter" in caplog.text and "seed's 3 mm / 20 HU" in caplog.text
    )
    with pytest.raises(WeightsError, match="differently filtered.*ttp.safetensors 3 mm / 20 HU"):
        filter_sigmas_of([a, _model("ttp")])
    with pytest.raises(WeightsError, match="no models"):
        filter_sigmas_of([])


def test_validation_recorded_and_inferred(caplog):
    cohort = {"layout": "phantom", "kind": "phantom", "phantom_seed": 7, "n_patients": 30}
    test = {"test": {"patients": ["MOL-003", "MOL-012"]}}
    v = validation({"validated_on": "phantom", "cohort": cohort, "metrics": test})
    assert v == Validation("phantom", cohort, 2, recorded=True) and not v.clinical
    assert v.describe() == "phantom cohort (seed 7, 30 patients, 2 held out)"
    with caplog.at_level(logging.INFO, logger="ctpmaps.nn.model_info"):
        old = validation({"cohort": {"layout": "phantom", "phantom_seed": 7}}, "cbf.json")
    assert (
        old.on == "phantom"
        and not old.recorded
        and "cbf.json records no validated_on" in caplog.text
    )
    assert validation({}).on == "unknown"
    assert cohort_kind({"layout": "unitobrain", "n_patients": 115}) == "patients"
    assert validation({"validated_on": "patients"}).clinical


def test_caveat_only_for_models_not_validated_on_patients():
    clinical = _model("cbv", validated_on="patients")
    assert validation_caveat([clinical]) is None
    phantom = _model("ttp", validated_on="phantom", cohort={"phantom_seed": 2024})
    text = validation_caveat([clinical, phantom])
    assert "TTP: phantom cohort (seed 2024)" in text and "CBV" not in text
    assert "cannot support a clinical decision" in text


def test_shipped_weights_record_their_grid_filter_and_validation(monkeypatch, caplog):
    # the demo weights are written with every field (files without them are read with the
    # seed's values: test_filter_of_models_recorded_old_and_disagreeing, test_grid.py)
    monkeypatch.delenv("CTPMAPS_WEIGHTS", raising=False)
    with caplog.at_level(logging.INFO, logger="ctpmaps.nn"):
        models = load_models()
        assert filter_sigmas_of(models) == (3.0, 20.0)
        for m in models:
            assert m.pixel_mm == pytest.approx((250 / 128, 250 / 128))  # 128 x 128 cohort
            assert m.validation.on == "phantom" and m.validation.recorded
    assert "assuming" not in caplog.text
    assert "cannot support a clinical decision" in validation_caveat(models)

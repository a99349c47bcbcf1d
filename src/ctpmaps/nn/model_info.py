"""What a model's metadata says about how to use it and how far to trust it.

- `training_filter`: the guided bilateral filter of its training frames, which a study must
  go through before inference (`filter_sigmas_of` for a set of models, as the chain needs
  one setting for all maps);
- `validation`: what it was validated on (a phantom cohort or patients), so that the
  chain can say when its maps cannot support a clinical decision (`validation_caveat`).

Models written before these fields existed get the seed's filter (3 mm / 20 HU, what made
every model of that time) and a validation inferred from their cohort record, each with a
log line.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import WeightsError
from .dataset import UNITOBRAIN_SIGMAS

__all__ = [
    "Validation",
    "enhancement_reference",
    "training_filter",
    "filter_sigmas_of",
    "validation",
    "validation_caveat",
    "cohort_kind",
]

log = logging.getLogger(__name__)

#: What a model can have been validated on.
VALIDATED_ON = ("phantom", "patients", "unknown")


def training_filter(meta: dict[str, Any], source: str = "model") -> tuple[float, float]:
    """(spatial sigma mm, range sigma HU) of the filter a model's training frames had.

    Models without a ``filter`` record get the seed's 3 mm / 20 HU (what every model was
    trained on before the field existed), with a log line.
    """
    f = meta.get("filter")
    if f:
        return float(f["sigma_spatial_mm"]), float(f["sigma_range_hu"])
    log.info(
        "%s records no filter of its training frames: assuming the seed's %g mm / %g HU",
        source,
        *UNITOBRAIN_SIGMAS,
    )
    return UNITOBRAIN_SIGMAS


def enhancement_reference(meta: dict[str, Any]) -> float | None:
    """The input-function area (HU s) a model's inputs were scaled to (`ctpmaps.nn.scale`),
    None for inputs as they are (every model before the option, the demo weights)."""
    scale = meta.get("enhancement_scale")
    return None if scale is None else float(scale["reference_area_hu_s"])


def filter_sigmas_of(models: Sequence[Any]) -> tuple[float, float]:
    """The guided bilateral filter (spatial mm, range HU) to apply to a study before
    predicting with ``models`` (`LoadedModel`): the one their training frames had.

    Raises
    ------
    WeightsError
        No model, or models trained on differently filtered frames (one study cannot be
        filtered two ways for one set of maps).

    Examples
    --------
    >>> from ctpmaps.nn import load_models, filter_sigmas_of   # doctest: +SKIP
    >>> filter_sigmas_of(load_models())                          # doctest: +SKIP
    (3.0, 20.0)
    """
    if not models:
        raise WeightsError("no models: expected at least one to read its filter")
    found = {m.path.name: training_filter(m.meta, m.path.name) for m in models}
    if len(set(found.values())) > 1:
        listed = ", ".join(f"{name} {s[0]:g} mm / {s[1]:g} HU" for name, s in found.items())
        raise WeightsError(f"models trained on differently filtered frames: {listed}")
    return next(iter(found.values()))


@dataclass(frozen=True)
class Validation:
    """What a model was validated on.

    Attributes
    ----------
    on : {"phantom", "patients", "unknown"}
        Kind of the cohort its cross-validation and test set came from.
    cohort : dict
        The cohort record of its metadata (path, layout, patients, a phantom's seed...).
    n_test_patients : int or None
        Held-out test patients.
    recorded : bool
        False when inferred from an older file without ``validated_on``.
    """

    on: str
    cohort: dict[str, Any] = field(default_factory=dict)
    n_test_patients: int | None = None
    recorded: bool = True

    @property
    def clinical(self) -> bool:
        """Whether the model was validated on patients' studies."""
        return self.on == "patients"

    def describe(self) -> str:
        """One phrase, e.g. ``phantom cohort (seed 2024, 30 patients, 4 held out)``."""
        parts = []
        if "phantom_seed" in self.cohort:
            parts.append(f"seed {self.cohort['phantom_seed']}")
        if "n_patients" in self.cohort:
            parts.append(f"{self.cohort['n_patients']} patients")
        if self.n_test_patients is not None:
            parts.append(f"{self.n_test_patients} held out")
        what = {"phantom": "phantom cohort", "patients": "patient cohort"}.get(self.on, "unknown")
        return what + (f" ({', '.join(parts)})" if parts else "")


def cohort_kind(info: dict[str, Any]) -> str:
    """``phantom`` or ``patients`` from a cohort record (`ctpmaps.nn.train.export`)."""
    if info.get("kind") in VALIDATED_ON:
        return info["kind"]
    if info.get("layout") == "phantom" or "phantom_seed" in info:
        return "phantom"
    return "patients" if info.get("layout") == "unitobrain" else "unknown"


def validation(meta: dict[str, Any], source: str = "model") -> Validation:
    """`Validation` of a model from its metadata (inferred, with a log line, for files
    without ``validated_on``)."""
    cohort = dict(meta.get("cohort") or {})
    test = (meta.get("metrics") or {}).get("test") or {}
    n_test = len(test["patients"]) if isinstance(test.get("patients"), list) else None
    on = meta.get("validated_on")
    if on in VALIDATED_ON:
        return Validation(on, cohort, n_test, recorded=True)
    on = cohort_kind(cohort)
    log.info("%s records no validated_on: %s, from its cohort record", source, on)
    return Validation(on, cohort, n_test, recorded=False)


def validation_caveat(models: Sequence[Any]) -> str | None:
    """A sentence to show beside maps from ``models`` when any was not validated on
    patients, else None.

    Examples
    --------
    >>> from ctpmaps.nn import load_models, validation_caveat   # doctest: +SKIP
    >>> validation_caveat(load_models())                           # doctest: +SKIP
    'U-Net maps from models validated only on a phantom ...'
    """
    weak = [(m.target, m.validation) for m in models if not m.validation.clinical]
    if not weak:
        return None
    said = [f"{t.upper()}: {v.describe()}" for t, v in weak]
    listed = "; ".join(dict.fromkeys(said))  # an ensemble's members, once each
    return (
        f"U-Net maps from models validated only on a phantom or on unknown data ({listed}): "
        "they cannot support a clinical decision"
    )

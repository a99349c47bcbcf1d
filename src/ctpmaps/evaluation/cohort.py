"""The seed study's evaluation over a cohort: maps, lesion overlap and volume agreement.

Input: per patient, per source (``"nlr"``, ``"ssvd"``, ``"bsvd"``, ``"osvd"``, ``"cnn"``,
``"truth"`` or a rater's name), optional maps in physical units and lesion masks
(``"core"``, ``"hypoperfusion"``, optional ``"penumbra"``), with the brain mask and the voxel
volume. One source is the reference. The work is done in two steps so that a cohort never
sits in memory: `evaluate_patient` reduces one patient's arrays to a small `PatientResult`,
`summarise_cohort` turns those into the tables (`evaluate_cohort` does both).

Tables (lists of dicts; units in the column names: ``_ml`` mL, ``_db`` dB, ``_pct`` %)
    ``maps``               the seed's Table 1: per map and source, MSE and PSNR on the
                           normalised scale over the slices and inside the brain, the constant
                           predictor beside them (mean and SD over patients)
    ``maps_per_patient``   the same per patient
    ``physical``           median bias and absolute error in the map's unit and in %, inside
                           the brain and per region (median over patients)
    ``dice``               the seed's Table 2: Dice per lesion and pair of sources (mean, SD, n)
    ``dice_per_patient``   every Dice, with the exclusion flag
    ``volume_agreement``   per lesion and pair: Pearson r and p, Bland-Altman bias, SD, limits
                           of agreement, coefficient of repeatability, mean absolute
                           difference, ICC(1,k) with 95 % CI (and ICC(1,1), ICC(2,1))
    ``across_sources``     per lesion, all sources together: Friedman (Wilcoxon for two
                           sources) and ICC(1,k)
    ``volumes``            every volume (the seed's Figures 5 and 6)
    ``volume_pairs``       the paired volumes behind each agreement row (Bland-Altman and
                           scatter plots)
    ``exclusions``         per patient and lesion: the reference's volume and whether the
                           patient is left out of the Dice and of the volume statistics

Exclusion rule (the seed left 3 of 15 patients with normal perfusion out of its Dice)
    A patient is left out of the Dice of a lesion type when the reference's volume of that
    lesion is below ``min_reference_ml`` (or the reference has no such mask): Dice there
    measures nothing but noise. A patient whose reference hypoperfusion is below it has
    normal perfusion and is also left out of the volume statistics (``exclude_normal_from_
    volumes``), as the seed's volume figures show only the remaining 12; patients with a
    hypoperfusion but no core keep their 0 mL cores there. Among the patients kept, a pair of
    masks that are both empty has an undefined Dice (NaN), counted as ``n_undefined``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError
from ..io.tables import jsonable
from ..physics import MAP_UNITS
from . import _tables
from .maps import LEVEL_MAPS, MapError, PhysicalError, map_error, physical_errors
from .overlap import dice, volume_ml

__all__ = [
    "LESIONS",
    "SourceData",
    "PatientData",
    "PatientResult",
    "CohortEvaluation",
    "source_pairs",
    "evaluate_patient",
    "summarise_cohort",
    "evaluate_cohort",
]

#: Lesion masks compared, in table order.
LESIONS = ("core", "hypoperfusion", "penumbra")


@dataclass(frozen=True)
class SourceData:
    """What one source gives for one patient.

    Attributes
    ----------
    maps : mapping of str to ndarray, shape (x, y, z)
        Map name (``"cbf"``, ``"cbv"``, ``"ttp"`` ...) -> values in physical units
        (`ctpmaps.physics.MAP_UNITS`); NaN where not computed.
    masks : mapping of str to ndarray of bool, shape (x, y, z)
        Lesion name (`LESIONS`) -> mask.
    """

    maps: Mapping[str, np.ndarray] = field(default_factory=dict)
    masks: Mapping[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class PatientData:
    """One patient's arrays from every source.

    Attributes
    ----------
    patient : str
        Identifier.
    brain : ndarray of bool, shape (x, y, z)
        Brain mask (map errors inside the brain).
    voxel_ml : float
        Volume of one voxel, mL.
    sources : mapping of str to SourceData
        Source name -> its maps and masks.
    regions : mapping of str to ndarray of bool, optional
        Named regions for the physical errors (tissue classes, residue-shape labels).
    """

    patient: str
    brain: np.ndarray
    voxel_ml: float
    sources: Mapping[str, SourceData]
    regions: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        shape = np.shape(self.brain)
        if len(shape) != 3 or np.asarray(self.brain).dtype != bool:
            raise InputError(
                f"{self.patient}: brain", f"expected a boolean (x, y, z) mask, got {shape}"
            )
        if not (np.isfinite(self.voxel_ml) and self.voxel_ml > 0):
            raise InputError(f"{self.patient}: voxel_ml", f"expected > 0 mL, got {self.voxel_ml}")
        for name, src in self.sources.items():
            for kind, arrays in (("maps", src.maps), ("masks", src.masks)):
                for key, arr in arrays.items():
                    if np.shape(arr) != shape:
                        raise InputError(
                            f"{self.patient}: {name} {kind}[{key!r}]",
                            f"expected the brain mask's shape {shape}, got {np.shape(arr)}",
                        )


@dataclass(frozen=True)
class PatientResult:
    """One patient reduced to numbers (no arrays).

    Attributes
    ----------
    patient : str
    volumes_ml : dict of str to dict of str to float
        Source -> lesion -> volume, mL.
    dice : dict of (lesion, source_a, source_b) to float
        Dice of every pair of sources having that mask (NaN when both are empty).
    map_errors : dict of (map, source) to MapError
        Normalised errors against the map reference.
    physical : dict of (map, source) to tuple of PhysicalError
        Physical errors against the map reference, brain then regions.
    """

    patient: str
    volumes_ml: dict[str, dict[str, float]]
    dice: dict[tuple[str, str, str], float]
    map_errors: dict[tuple[str, str], MapError]
    physical: dict[tuple[str, str], tuple[PhysicalError, ...]]


def source_pairs(sources: Sequence[str], reference: str) -> list[tuple[str, str]]:
    """Pairs of sources in table order: each source against the reference first (reference
    second, so differences are ``source - reference``), then the other pairs in order.

    Examples
    --------
    >>> source_pairs(["r1", "r2", "nlr"], "nlr")
    [('r1', 'nlr'), ('r2', 'nlr'), ('r1', 'r2')]
    """
    others = [s for s in sources if s != reference]
    first = [(s, reference) for s in others] if reference in sources else []
    rest = [(a, b) for i, a in enumerate(others) for b in others[i + 1 :]]
    return first + rest


def _patient_maps(patient: PatientData, map_reference: str, value_ranges, min_value):
    ref = patient.sources.get(map_reference, SourceData()).maps
    errors, physical = {}, {}
    for source, data in patient.sources.items():
        if source == map_reference:
            continue
        for name, values in data.maps.items():
            if name not in ref:
                continue
            if name in value_ranges:
                errors[name, source] = map_error(
                    values, ref[name], value_range=value_ranges[name], brain=patient.brain,
                    level=name in LEVEL_MAPS,
                )  # fmt: skip
            physical[name, source] = tuple(
                physical_errors(
                    values,
                    ref[name],
                    brain=patient.brain,
                    regions=patient.regions,
                    min_reference=min_value.get(name, 0.0),
                )
            )
    return errors, physical


def evaluate_patient(
    patient: PatientData,
    *,
    reference: str,
    value_ranges: Mapping[str, tuple[float, float]],
    map_reference: str | None = None,
    min_reference_value: Mapping[str, float] | None = None,
) -> PatientResult:
    """Reduce one patient to volumes, Dice of every pair and map errors.

    Parameters
    ----------
    patient : PatientData
    reference : str
        Reference source of the lesion masks.
    value_ranges : mapping of str to (low, high)
        Physical range of each map put on [0, 1] for MSE/PSNR (the U-Net's
        ``TARGET_RANGES``); maps without a range get physical errors only.
    map_reference : str, optional
        Reference of the maps (default ``reference``), e.g. ``"truth"`` on a phantom.
    min_reference_value : mapping of str to float, optional
        Per map, relative errors only where the reference exceeds this (map's unit).

    Returns
    -------
    PatientResult
    """
    map_ref = map_reference or reference
    volumes = {
        s: {lesion: volume_ml(m, patient.voxel_ml) for lesion, m in d.masks.items()}
        for s, d in patient.sources.items()
    }
    pairs = source_pairs(list(patient.sources), reference)
    dices = {
        (lesion, a, b): dice(patient.sources[a].masks[lesion], patient.sources[b].masks[lesion])
        for a, b in pairs
        for lesion in patient.sources[a].masks
        if lesion in patient.sources[b].masks
    }
    errors, physical = _patient_maps(patient, map_ref, value_ranges, min_reference_value or {})
    return PatientResult(patient.patient, volumes, dices, errors, physical)


@dataclass(frozen=True)
class CohortEvaluation:
    """The cohort's tables and how they were made.

    Attributes
    ----------
    settings : dict
        Reference, map reference, sources, lesions, ``min_reference_ml`` and the exclusion
        rule in words.
    captions : dict of str to str
        Table name -> what it holds.
    tables : dict of str to list of dict
        Table name -> rows (module docstring).
    """

    settings: dict[str, Any]
    captions: dict[str, str]
    tables: dict[str, list[dict[str, Any]]]

    def as_dict(self) -> dict[str, Any]:
        """Settings, captions and tables as plain JSON types."""
        return jsonable(
            {"settings": self.settings, "captions": self.captions, "tables": self.tables}
        )


def _source_order(results: Sequence[PatientResult], reference: str, sources) -> list[str]:
    if sources is None:
        found: dict[str, None] = {}
        for r in results:
            found.update(dict.fromkeys(r.volumes_ml))
        sources = list(found)
    sources = list(sources)
    if reference not in sources:
        raise InputError("reference", f"expected one of the sources {sources}, got {reference!r}")
    return sources


def _rule(min_ml: float, normal_out: bool) -> str:
    rule = (
        f"A patient is left out of the Dice of a lesion type when the reference's volume of "
        f"that lesion is below {min_ml:g} mL."
    )
    if normal_out:
        rule += (
            f" A patient whose reference hypoperfusion is below {min_ml:g} mL (normal "
            "perfusion) is also left out of the volume statistics."
        )
    return rule


def summarise_cohort(
    results: Sequence[PatientResult],
    *,
    reference: str,
    map_reference: str | None = None,
    sources: Sequence[str] | None = None,
    lesions: Sequence[str] = LESIONS,
    min_reference_ml: float = 1.0,
    exclude_normal_from_volumes: bool = True,
    map_units: Mapping[str, str] = MAP_UNITS,
) -> CohortEvaluation:
    """The cohort tables from per-patient results (module docstring).

    Parameters
    ----------
    results : sequence of PatientResult
        From `evaluate_patient`, one per patient.
    reference : str
        Reference source of the lesion masks.
    map_reference : str, optional
        Reference of the maps, as given to `evaluate_patient` (recorded in the settings).
    sources : sequence of str, optional
        Sources and their order in the tables (default: order of appearance).
    lesions : sequence of str
        Lesion masks compared.
    min_reference_ml : float
        Exclusion threshold on the reference's volume, mL.
    exclude_normal_from_volumes : bool
        Leave patients with normal perfusion on the reference out of the volume statistics.
    map_units : mapping of str to str
        Unit of each map (physical errors table).

    Returns
    -------
    CohortEvaluation
    """
    if not results:
        raise InputError("results", "expected at least one patient")
    order = _source_order(results, reference, sources)
    ctx = _tables.Context(
        results=list(results),
        reference=reference,
        sources=order,
        pairs=source_pairs(order, reference),
        lesions=list(lesions),
        min_reference_ml=float(min_reference_ml),
        exclude_normal=exclude_normal_from_volumes,
    )
    settings = {
        "reference": reference,
        "map_reference": map_reference or reference,
        "sources": order,
        "lesions": list(lesions),
        "n_patients": len(results),
        "min_reference_ml": float(min_reference_ml),
        "exclude_normal_from_volumes": exclude_normal_from_volumes,
        "exclusion_rule": _rule(min_reference_ml, exclude_normal_from_volumes),
    }
    return CohortEvaluation(settings, dict(_tables.CAPTIONS), _tables.build(ctx, map_units))


def evaluate_cohort(
    patients: Iterable[PatientData],
    *,
    reference: str,
    value_ranges: Mapping[str, tuple[float, float]],
    map_reference: str | None = None,
    min_reference_value: Mapping[str, float] | None = None,
    **summary: Any,
) -> CohortEvaluation:
    """`evaluate_patient` over ``patients`` (consumed one at a time), then
    `summarise_cohort`.

    Parameters
    ----------
    patients : iterable of PatientData
        May be a generator that loads each patient when asked.
    reference, value_ranges, map_reference, min_reference_value
        As in `evaluate_patient`.
    **summary
        Keyword options of `summarise_cohort` (``sources``, ``lesions``,
        ``min_reference_ml``, ``exclude_normal_from_volumes``, ``map_units``).
    """
    results = [
        evaluate_patient(
            p,
            reference=reference,
            value_ranges=value_ranges,
            map_reference=map_reference,
            min_reference_value=min_reference_value,
        )
        for p in patients
    ]
    return summarise_cohort(results, reference=reference, map_reference=map_reference, **summary)

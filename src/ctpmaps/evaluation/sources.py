"""Where the maps and masks of an evaluation come from, and reading those on disk.

Three kinds of source (``ctpmaps evaluate --source``):

``method``  a method of the registry (`ctpmaps.perfusion.METHODS`: ``nlr``, ``ssvd``,
            ``bsvd``, ``osvd``, ``cnn``): maps and lesions computed from the study by the
            chain (`ctpmaps.pipeline.analyse_study`);
``truth``   a phantom patient's ``truth/`` folder (``ctpmaps phantom``): ``<map>.nii.gz``,
            ``<lesion>_mask.nii.gz``, ``brain_mask.nii.gz``, ``tissue.nii.gz``,
            ``residue_label.nii.gz``;
``truth-rule``  the same folder's true *maps* segmented by the evaluation's lesion rule,
            as a method's are (masks only): what a method without error would give under
            that rule. Beside ``truth`` it separates the rule's own error from the maps';
            beside a method it is the agreement that method's masks can reach;
``rater``   ``NAME=FOLDER``: segmentations drawn by a person (e.g. in ITK-SNAP) on the
            study's grid, one of two layouts per patient (`rater_files`):

            - ``FOLDER/<patient>/core.nii.gz`` and ``FOLDER/<patient>/hypoperfusion.nii.gz``
              (non-zero voxels are the lesion; penumbra = hypoperfusion minus core);
            - ``FOLDER/<patient>.nii.gz``, a label map with the project's ``lesions.nii.gz``
              convention: 1 penumbra, 2 core (hypoperfusion = both).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io.nifti import read_nifti_map
from ..perfusion.methods import METHODS
from ..physics import MAP_UNITS
from .maps import regions_from_labels

__all__ = [
    "TRUTH",
    "TRUTH_RULE",
    "SOURCE_KINDS",
    "Source",
    "parse_source",
    "parse_sources",
    "rater_files",
    "read_rater",
    "read_truth",
    "TruthData",
]

#: The name of the phantom-truth source.
TRUTH = "truth"
#: The name of the source that segments the phantom's true maps by the lesion rule.
TRUTH_RULE = "truth-rule"
#: Kinds of source.
SOURCE_KINDS = ("method", "truth", "truth-rule", "rater")
#: Lesion masks of the truth folder (``<name>_mask.nii.gz``).
_TRUTH_LESIONS = ("core", "hypoperfusion", "penumbra")
#: Tissue classes of the phantom's ``tissue.nii.gz`` scored as regions (brain tissue only;
#: `ctpmaps.phantom.anatomy.TISSUE_LABELS`).
TISSUE_REGIONS = {1: "grey matter", 2: "white matter"}


@dataclass(frozen=True)
class Source:
    """One source of maps and masks.

    Attributes
    ----------
    name : str
        As it appears in the tables (``nlr``, ``truth``, ``rater1`` ...).
    kind : {"method", "truth", "truth-rule", "rater"}
    folder : Path or None
        A rater's folder.
    """

    name: str
    kind: str
    folder: Path | None = None


def parse_source(spec: str) -> Source:
    """A source from its command-line form: a method name, ``truth``, ``truth-rule``, or
    ``NAME=FOLDER``.

    Raises
    ------
    InputError
        Unknown name, a rater named like a method or the truth, or a folder that is not one.

    Examples
    --------
    >>> parse_source("nlr")
    Source(name='nlr', kind='method', folder=None)
    """
    spec = str(spec).strip()
    if "=" in spec:
        name, folder = (part.strip() for part in spec.split("=", 1))
        if not name or name in METHODS or name in (TRUTH, TRUTH_RULE):
            raise InputError(
                "--source", f"{spec}: a rater needs its own name (not a method or truth)"
            )
        if not Path(folder).is_dir():
            raise InputError(folder, f"rater {name}: expected a folder of segmentations")
        return Source(name, "rater", Path(folder))
    if spec in (TRUTH, TRUTH_RULE):
        return Source(spec, spec)
    if spec in METHODS:
        return Source(spec, "method")
    raise InputError(
        "--source",
        f"expected a method ({', '.join(METHODS)}), truth, truth-rule, or NAME=FOLDER, "
        f"got {spec!r}",
    )


def parse_sources(specs) -> list[Source]:
    """Every ``--source``, checked: at least two, names unique."""
    sources = [parse_source(s) for s in specs]
    names = [s.name for s in sources]
    if len(sources) < 2:
        raise InputError("--source", f"expected at least two sources to compare, got {names}")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError("--source", f"given twice: {', '.join(dup)}")
    return sources


def rater_files(folder: Path, patient: str) -> dict[str, Path]:
    """A rater's files for one patient: ``{"core", "hypoperfusion"}`` or ``{"labels"}``.

    Raises
    ------
    InputError
        Neither layout (module docstring) is there for ``patient``.
    """
    sub = folder / patient
    pair = {k: sub / f"{k}.nii.gz" for k in ("core", "hypoperfusion")}
    if all(p.is_file() for p in pair.values()):
        return pair
    labels = folder / f"{patient}.nii.gz"
    if labels.is_file():
        return {"labels": labels}
    raise InputError(
        folder,
        f"no segmentation of {patient}: expected {patient}/core.nii.gz and "
        f"{patient}/hypoperfusion.nii.gz, or {patient}.nii.gz (1 penumbra, 2 core)",
    )


def _read_on_grid(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    data = np.asarray(read_nifti_map(path)[0])
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.shape != tuple(shape):
        raise InputError(path, f"shape {data.shape} differs from the study's {tuple(shape)}")
    return data


def read_rater(folder: Path, patient: str, shape: tuple[int, int, int]) -> dict[str, np.ndarray]:
    """A rater's ``core``, ``hypoperfusion`` and ``penumbra`` masks of one patient.

    Parameters
    ----------
    folder : Path
        The rater's folder (module docstring).
    patient : str
    shape : (x, y, z)
        The study's grid; a file of another shape raises `InputError`.
    """
    files = rater_files(folder, patient)
    if "labels" in files:
        labels = _read_on_grid(files["labels"], shape)
        core, hypo = labels == 2, labels >= 1
    else:
        core = _read_on_grid(files["core"], shape) > 0
        hypo = (_read_on_grid(files["hypoperfusion"], shape) > 0) | core
    return {"core": core, "hypoperfusion": hypo, "penumbra": hypo & ~core}


@dataclass(frozen=True)
class TruthData:
    """A phantom patient's truth: maps (physical units), lesion masks, brain, regions."""

    maps: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]
    brain: np.ndarray
    regions: dict[str, np.ndarray]


def read_truth(folder: Path) -> TruthData:
    """Read a phantom patient's ``truth/`` folder (`ctpmaps.phantom.write`).

    Maps: every ``<map>.nii.gz`` of `ctpmaps.physics.MAP_UNITS` present. Masks: core,
    hypoperfusion, penumbra. Regions for the physical errors: grey and white matter
    (``tissue.nii.gz``), the residue-shape classes (``residue_label.nii.gz``, names from
    ``truth.json``) and the true hypoperfusion.

    Raises
    ------
    InputError
        No truth folder, or no brain mask in it.
    """
    folder = Path(folder)
    brain_path = folder / "brain_mask.nii.gz"
    if not brain_path.is_file():
        raise InputError(folder, "expected a phantom truth folder with brain_mask.nii.gz")
    brain = np.asarray(read_nifti_map(brain_path)[0]) > 0
    maps = {
        name: np.asarray(read_nifti_map(folder / f"{name}.nii.gz")[0], dtype=np.float32)
        for name in MAP_UNITS
        if (folder / f"{name}.nii.gz").is_file()
    }
    masks = {
        name: _read_on_grid(folder / f"{name}_mask.nii.gz", brain.shape) > 0
        for name in _TRUTH_LESIONS
        if (folder / f"{name}_mask.nii.gz").is_file()
    }
    regions: dict[str, np.ndarray] = {}
    if (folder / "tissue.nii.gz").is_file():
        regions |= regions_from_labels(
            _read_on_grid(folder / "tissue.nii.gz", brain.shape), TISSUE_REGIONS
        )
    if (folder / "residue_label.nii.gz").is_file():
        names = {1: "box-like", 2: "intermediate", 3: "exponential-like"}
        with_codes = folder / "truth.json"
        if with_codes.is_file():
            codes = json.loads(with_codes.read_text()).get("label_codes", {}).get("residue_label")
            names = {int(k): str(v) for k, v in (codes or {}).items() if int(k) > 0} or names
        labels = _read_on_grid(folder / "residue_label.nii.gz", brain.shape)
        regions |= {f"residue {n}": m for n, m in regions_from_labels(labels, names).items()}
    if "hypoperfusion" in masks:
        regions["true hypoperfusion"] = masks["hypoperfusion"]
    return TruthData(maps, masks, brain, regions)

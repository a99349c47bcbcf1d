"""Arguments and options shared by several commands, defined once."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from ..perfusion.methods import METHODS
from ..physics import BRAIN_DENSITY, HEMATOCRIT_FACTOR
from ..preprocess.motion.register import METHODS as MOTION_METHODS


def unset_option(kind, metavar: str, help: str, *flags: str):
    """An option without a default worth showing (None: the command decides)."""
    return Annotated[
        kind | None, typer.Option(*flags, metavar=metavar, help=help, show_default=False)
    ]


#: ``--method`` choices: the method registry (`ctpmaps.perfusion.METHODS`).
MethodChoice = Enum("MethodChoice", {name: name for name in METHODS}, type=str)

Study = Annotated[
    Path,
    typer.Argument(
        metavar="STUDY",
        help="NIfTI file, DICOM folder or UniToBrain patient folder.",
        show_default=False,
    ),
]
Out = Annotated[
    Path,
    typer.Argument(
        metavar="OUT",
        help="Output folder: new, empty, or an earlier run's (with --overwrite).",
        show_default=False,
    ),
]
Method = Annotated[
    MethodChoice,
    typer.Option(
        help="A deconvolution method, or cnn for the U-Net (docs/methods.md describes each).",
    ),
]
Overwrite = Annotated[
    bool,
    typer.Option(
        "--overwrite",
        help="Replace the files an earlier ctpmaps run wrote in OUT (never other files).",
    ),
]
SeriesUID = Annotated[
    str | None,
    typer.Option(metavar="UID", help="DICOM series to read when the folder holds several."),
]
Mask = Annotated[
    Path | None,
    typer.Option(
        metavar="NIFTI", help="Brain mask on the study's grid instead of the automatic one."
    ),
]
AifMask = Annotated[
    Path | None, typer.Option(metavar="NIFTI", help="Arterial voxels (mask) for a manual AIF.")
]
AifCsv = Annotated[
    Path | None,
    typer.Option(
        metavar="CSV",
        help="A manual AIF: rows 'time_s,hu' of enhancement (the aif.csv a run writes).",
    ),
]
VofMask = Annotated[
    Path | None,
    typer.Option(metavar="NIFTI", help="Venous voxels (mask); the AIF is scaled to this VOF."),
]
HematocritFactor = Annotated[
    float,
    typer.Option(
        metavar="KAPPA",
        help="(1 - large-vessel Hct) / (1 - small-vessel Hct).",
        show_default=f"{HEMATOCRIT_FACTOR:.3f}",
    ),
]
Density = Annotated[
    float,
    typer.Option(
        metavar="G_PER_ML", help="Brain density in g/mL.", show_default=f"{BRAIN_DENSITY:g}"
    ),
]
NeighbourhoodMtt = Annotated[
    bool,
    typer.Option(
        "--neighbourhood-mtt/--own-mtt",
        help="nlr: fit every voxel with its neighbourhood's MTT and residue shape unless "
        "its curve rejects them: about a third less voxel-to-voxel CBF error on the "
        "phantom, but grey matter's median CBF reads lower (ctpmaps.perfusion.boxnlr, "
        "docs/accuracy_neighbourhood.md).",
    ),
]
Motion = Annotated[
    bool, typer.Option("--motion/--no-motion", help="Rigid motion correction of every frame.")
]
MotionMethodChoice = Enum("MotionMethodChoice", {m: m for m in MOTION_METHODS}, type=str)
MotionMethod = Annotated[
    MotionMethodChoice,
    typer.Option(
        help="Registration: gauss-newton (batched rigid fit, the default) or elastix-seed "
        "(the seed study's elastix settings).",
    ),
]
Filter = Annotated[bool, typer.Option("--filter/--no-filter", help="Guided 3D bilateral filter.")]
SigmaSpatial = unset_option(
    float, "MM", "Filter spatial sigma in mm (default 2, with --method cnn 3; the seed's 3)."
)
SigmaRange = unset_option(
    float, "HU", "Filter range sigma in HU (default 3, with --method cnn 20; the seed's 20)."
)
Weights = unset_option(
    list[Path],
    "PATH",
    "U-Net model file or folder (repeat for several maps; several models of one map are "
    "averaged); default $CTPMAPS_WEIGHTS or the shipped demo weights.",
    "--weights",
    "-w",
)
Device = unset_option(str, "DEVICE", "cpu or cuda for the U-Net (default: cuda if present).")
Scheduler = unset_option(
    str,
    "ADDRESS",
    "A running dask scheduler (tcp://host:8786 or a scheduler file); default: a local cluster.",
)
Workers = Annotated[int, typer.Option(metavar="N", min=1, help="Processes of the local cluster.")]
FrameInterval = unset_option(
    float,
    "S",
    "Frame interval in s for a DICOM series without time tags (frames ordered by InstanceNumber).",
)
Anonymize = Annotated[
    bool,
    typer.Option(
        "--anonymize",
        help="DICOM outputs without patient identifiers (DICOM PS3.15 basic profile).",
    ),
]
Identifiers = Annotated[
    bool,
    typer.Option(
        "--identifiers",
        help="Write the patient's ID and name into run.json, volumes and the report (left "
        "out by default).",
    ),
]

"""The registry of methods that make perfusion maps: one entry per method, one name each.

Everything that depends on the method is read from here: the command line's choices
(``--method``), the per-method lesion thresholds (`ctpmaps.lesion`), the filter the frames
get before the maps, the documentation tables. Adding a method is one entry here (and its
model class for a model-based method); see ``docs/architecture.md``.

The U-Net (`ctpmaps.nn`) is registered under ``"cnn"`` without being imported: this module
only names it, so ``perfusion`` does not depend on torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError
from .base import PerfusionModel
from .boxnlr import BoxNLRModel
from .svd import BSVDModel, OSVDModel, SSVDModel

__all__ = [
    "Method",
    "METHODS",
    "MODEL_METHODS",
    "DEFAULT_METHOD",
    "method_info",
    "methods_markdown",
]


@dataclass(frozen=True)
class Method:
    """What the project knows about one way of making maps.

    Attributes
    ----------
    name : str
        The one name of the method: command line, ``PerfusionMaps.method``, file metadata.
    label : str
        One line for help texts, reports and docs.
    model : type of PerfusionModel or None
        The model class of a model-based method; None for the U-Net (`ctpmaps.nn`).
    core_rcbf : float
        Default core threshold: CBF below this fraction of the healthy contralateral
        reference (`ctpmaps.lesion.LesionCriteria.core_rcbf`); calibrated per method on
        a phantom cohort disjoint from the evaluation cohort (``docs/core_threshold.md``).
    reference : str
        Where the method comes from.
    hypoperfusion_tmax_s : float
        Default hypoperfusion threshold: Tmax above this, in s
        (`ctpmaps.lesion.LesionCriteria.hypoperfusion_tmax_s`). Each method reads Tmax its
        own way (on the clinical scale: healthy tissue near 0-2 s; see its module), so
        each carries its own threshold, calibrated like the core's on a cohort disjoint
        from the evaluation cohort (``benchmarks/calibrate_thresholds.py``,
        ``docs/core_threshold.md``). The U-Net (``cnn``), trained on the phantom's true
        maps, takes the thresholds that define the truth's masks: RAPID's 0.30 and the
        clinical 6 s (``docs/unet.md``).
    tmax_from : str or None
        Another model-based method whose deconvolved residue gives the Tmax map, or None
        (the method's own). The NLR's residues (box, gamma) are highest at their onset,
        so its own Tmax is its onset, blind to the dispersion between artery and tissue
        that the true impulse response's maximum includes: on the phantom at 512
        (calibration seeds) it read true Tmax 6-7 s as 4.8 s (median) and cut the
        hypoperfusion, and the core inside it, short. A non-parametric residue carries
        the dispersion; sSVD's (first reach of 70 % of its maximum, healthy tissue at 0)
        matched the truth best of the SVD family there (best hypoperfusion Dice per patient
        0.79-0.95 against the NLR onset's 0.66-0.90).
    """

    name: str
    label: str
    model: type[PerfusionModel] | None
    core_rcbf: float
    reference: str = ""
    hypoperfusion_tmax_s: float = 6.0
    tmax_from: str | None = None

    @property
    def model_based(self) -> bool:
        """Whether the maps come from a deconvolution model (needs an AIF)."""
        return self.model is not None


#: Every method, by name, in the order the command line lists them.
METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            "nlr",
            "nonlinear regression of a box or gamma-shaped residue (the seed's box NLR); Tmax "
            "from sSVD's residue",
            BoxNLRModel,
            0.25,
            "Bennink et al., J Med Imaging 2016",
            hypoperfusion_tmax_s=5.0,
            tmax_from="ssvd",
        ),
        Method(
            "ssvd",
            "standard truncated SVD deconvolution",
            SSVDModel,
            0.325,
            "Østergaard et al., Magn Reson Med 1996",
            hypoperfusion_tmax_s=5.0,
        ),
        Method(
            "bsvd",
            "block-circulant (delay-insensitive) SVD deconvolution",
            BSVDModel,
            0.50,
            "Wu et al., Magn Reson Med 2003",
            hypoperfusion_tmax_s=3.5,
        ),
        Method(
            "osvd",
            "oscillation-index block-circulant SVD deconvolution",
            OSVDModel,
            0.55,
            "Wu et al., Magn Reson Med 2003",
            hypoperfusion_tmax_s=5.5,
        ),
        Method(
            "cnn",
            "U-Net from the registered frames, no AIF (the seed's CNN); the thresholds that "
            "define the true masks of the phantom it was trained on",
            None,
            0.30,
            "Gava et al., Front Neuroinform 2023",
        ),
    )
}
#: The model-based methods (a deconvolution of tissue curves by an AIF).
MODEL_METHODS = tuple(name for name, m in METHODS.items() if m.model_based)
#: The method used when none is named.
DEFAULT_METHOD = "nlr"


def method_info(name: str) -> Method:
    """The registry entry of ``name``.

    Raises
    ------
    InputError
        ``name`` is not a registered method.
    """
    try:
        return METHODS[name]
    except KeyError:
        raise InputError("method", f"expected one of {', '.join(METHODS)}, got {name!r}") from None


def methods_markdown() -> str:
    """``docs/methods.md``: the registry as a table (``ctpmaps methods --markdown`` prints
    it; a test keeps the file equal to it)."""
    lines = [
        "# Methods",
        "",
        "The methods `--method` accepts, from the registry `ctpmaps.perfusion.METHODS`",
        "(this page is printed by `ctpmaps methods --markdown`).",
        "",
        "| name | what | model | core threshold (rCBF) | hypoperfusion threshold (Tmax, s) "
        "| reference |",
        "|---|---|---|---|---|---|",
    ]
    for m in METHODS.values():
        model = f"`{m.model.__name__}`" if m.model else "U-Net (`ctpmaps.nn`)"
        lines.append(
            f"| `{m.name}` | {m.label} | {model} | {m.core_rcbf:g} | "
            f"{m.hypoperfusion_tmax_s:g} | {m.reference} |"
        )
    lines += [
        "",
        "The core threshold is the default of `--core-rcbf`: CBF below this fraction of the",
        "median CBF of healthy tissue in the other hemisphere (`docs/core_threshold.md`).",
        "The hypoperfusion threshold is the default of `--tmax-threshold`: Tmax above it, each",
        "method reading Tmax on the clinical scale (healthy tissue near 0-2 s,",
        "`docs/accuracy.md`); both are calibrated per method by",
        "`benchmarks/calibrate_thresholds.py` on a cohort disjoint from the evaluation cohort;",
        "the U-Net, trained on the phantom's true maps, takes the thresholds that define the",
        "truth's masks (`docs/unet.md`).",
        "Both maps are read after an in-plane median over 3 mm (`--median-mm`; none where",
        "pixels are larger, as at 128 x 128), calibrated with it.",
        "",
    ]
    return "\n".join(lines)

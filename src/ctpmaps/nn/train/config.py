"""Settings of a training run (`TrainConfig`), checked before anything is loaded."""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field

from ...errors import InputError
from ..normalise import TARGET_RANGES
from ..scale import REFERENCE_AREA_HU_S
from ..splits import TEST_FRACTION
from ..unet import PRESETS

__all__ = ["TrainConfig"]


@dataclass
class TrainConfig:
    """Settings of a training run (the seed's values by default).

    Attributes
    ----------
    target : str
        Map to learn (`TARGET_RANGES`).
    target_source : {"truth", "nlr"}
        Reference maps: phantom truth or NLR.
    preset : str
        Widths from `PRESETS` (``small`` or ``paper``), unless ``features`` is given.
    features : list of 5 int or None
        Explicit widths.
    temporal : int
        Width of the network's per-pixel temporal stem (`ctpmaps.nn.unet.TemporalStem`);
        0 (default, the seed's architecture): none.
    time_head : bool
        TTP only: the network ends in a soft argmax over its input frames' times
        (`ctpmaps.nn.unet.TimeHead`) instead of a sigmoid (`time_head_of` gives the times).
    n_frames : int or None
        Frames T (uniform stride from frame 0); all by default.
    epochs_pre, epochs_fine : int
        Pre-training epochs on down-sampled slices, then fine-tuning at full resolution.
    pre_size : int
        Longer side of the pre-training slices (128).
    lr : float
        Adam learning rate.
    batch : int
        Slices per batch (per process under torchrun).
    folds : int
        k of the cross-validation.
    test_fraction : float
        Share of patients held out for testing.
    seed : int
        Seed of the split, initialisation and shuffling.
    masked_loss : bool
        MSE inside the brain mask only (default: over the whole slice, as the seed); the
        best epoch and fold and the learning-rate schedule then follow the validation MSE
        inside the brain too (`selection_metric`).
    augment : bool
        Flip each training slice at random left-right and front-back (frames, target and
        mask together). The maps are local functions of the tissue and arterial curves, so
        a flipped slice is a valid example of anatomy the network has not seen.
    time_shift : bool
        Start each training slice's T frames at a random acquisition frame between frame 0
        and the stride (`subsample_frames`) less one, and shift a TTP target by the same
        time (TTP counts from the first frame; the other maps do not move): each epoch the
        bolus arrives at another time, so that the network reads TTP from the curves
        rather than from the cohort's usual bolus timing. Needs equally spaced frames;
        no effect when all frames are kept. The training slices then hold every frame
        (stride x the memory).
    enhancement_scale : bool
        Scale each study's enhancement to one input-function area before the window
        (`ctpmaps.nn.scale`, `REFERENCE_AREA_HU_S`), recorded with the model so that
        inference does the same: the network then knows each patient's bolus, not only
        the cohort's (the automatic AIF and VOF are searched; not the seed's "no AIF").
    plateau_patience, plateau_factor : int, float
        ReduceLROnPlateau on the validation MSE.
    weights_dtype : str
        Storage of the exported model (``float32`` or ``float16``).
    sigma_spatial_mm, sigma_range_hu : float
        Guided bilateral filter of a phantom cohort's frames (the seed's 3 mm / 20 HU; a
        UniToBrain cohort's frames have that filter already). Recorded with the model, so
        that inference filters a study the same way (`ctpmaps.nn.filter_sigmas_of`).
    init_weights : str or None
        A model file to start every fold from (fine-tuning, e.g. at full size after
        training on down-sampled slices); its architecture and frames must match. None
        starts from a seeded random initialisation.
    command : str
        The command line that started the run (recorded with the model).
    """

    target: str = "cbv"
    target_source: str = "nlr"
    preset: str = "small"
    features: list[int] | None = None
    temporal: int = 0
    time_head: bool = False
    n_frames: int | None = None
    epochs_pre: int = 250
    epochs_fine: int = 50
    pre_size: int = 128
    lr: float = 1e-5
    batch: int = 8
    folds: int = 3
    test_fraction: float = TEST_FRACTION
    seed: int = 0
    masked_loss: bool = False
    augment: bool = False
    time_shift: bool = False
    enhancement_scale: bool = False
    plateau_patience: int = 10
    plateau_factor: float = 0.5
    weights_dtype: str = "float32"
    sigma_spatial_mm: float = 3.0
    sigma_range_hu: float = 20.0
    init_weights: str | None = None
    command: str = field(default="", compare=False)

    def check(self) -> TrainConfig:
        """Validate every setting (InputError naming the first bad one)."""
        if self.target not in TARGET_RANGES:
            raise InputError(
                "target", f"expected one of {list(TARGET_RANGES)}, got {self.target!r}"
            )
        if self.time_head and self.target != "ttp":
            raise InputError(
                "time_head", f"a time head reads a time to peak: target ttp, got {self.target!r}"
            )
        if self.features is None and self.preset not in PRESETS:
            raise InputError("preset", f"expected one of {list(PRESETS)}, got {self.preset!r}")
        for name in ("epochs_pre", "epochs_fine", "temporal"):
            _whole(name, getattr(self, name), 0)
        if self.epochs_pre + self.epochs_fine < 1:
            raise InputError("epochs", "expected at least one epoch in all")
        for name in ("pre_size", "batch", "plateau_patience"):
            _whole(name, getattr(self, name), 1)
        if self.pre_size % 16:
            raise InputError("pre_size", f"expected a multiple of 16, got {self.pre_size}")
        if not (self.lr > 0 and 0 < self.plateau_factor < 1):
            raise InputError("lr", f"expected lr > 0 and 0 < factor < 1, got {self.lr}")
        if self.weights_dtype not in ("float32", "float16"):
            raise InputError(
                "weights_dtype", f"expected float32 or float16, got {self.weights_dtype!r}"
            )
        if not (self.sigma_spatial_mm >= 0 and self.sigma_range_hu > 0):
            raise InputError(
                "sigma",
                f"expected spatial >= 0 mm and range > 0 HU, got {self.sigma_spatial_mm}, "
                f"{self.sigma_range_hu}",
            )
        return self

    @property
    def filter_sigmas(self) -> tuple[float, float]:
        """(spatial mm, range HU) of the training frames' filter."""
        return float(self.sigma_spatial_mm), float(self.sigma_range_hu)

    @property
    def enhancement_reference(self) -> float | None:
        """Input-function area (HU s) the enhancement is scaled to, None without."""
        return REFERENCE_AREA_HU_S if self.enhancement_scale else None

    @property
    def selection_metric(self) -> str:
        """The validation metric that picks the best epoch and fold and drives the learning
        rate: the one the loss minimises (inside the brain with ``masked_loss``)."""
        return "val_mse_brain" if self.masked_loss else "val_mse"

    @property
    def widths(self) -> tuple[int, ...]:
        """Widths of the network."""
        return tuple(self.features) if self.features is not None else PRESETS[self.preset]

    def time_head_of(self, times: list[float]) -> list[float] | None:
        """The `TimeHead`'s normalised times for input frames at ``times`` (s): each frame's
        time after the first (TTP counts from the first frame, with or without
        ``time_shift``) on the target's scale; None without a time head."""
        if not self.time_head:
            return None
        low, high = TARGET_RANGES[self.target]
        return [min(max((t - times[0] - low) / (high - low), 0.0), 1.0) for t in times]

    def stages(self) -> list[tuple[str, int, int | None]]:
        """``(name, epochs, size)`` of pre-training and fine-tuning (None: full size)."""
        return [("pre", self.epochs_pre, self.pre_size), ("fine", self.epochs_fine, None)]


def _whole(name: str, value: object, low: int) -> None:
    """An integer setting at least ``low`` (a float such as 2.5 is refused here, not where
    the network is built)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise InputError(name, f"expected an integer >= {low}, got {value!r}")

"""Training slices from a cohort folder: preprocessed frames in, one perfusion map out.

Two layouts are recognised:

``phantom``
    ``COHORT/<patient>/ctp.nii.gz`` (raw frames, with their sidecar) and, from
    ``ctpmaps phantom``, ``truth/<map>.nii.gz`` and ``truth/brain_mask.nii.gz``. Frames are
    preprocessed here with `ctpmaps.preprocess.guided_bilateral_filter` (by default 3 mm,
    20 HU, as the seed; ``filter_sigmas``); phantom frames have no motion unless asked for.
``unitobrain``
    A UniToBrain cohort root: the ``_Registered_Filtered_3mm_20HU`` frames are read as they
    are (their filter is the seed's, `UNITOBRAIN_SIGMAS`), and the ``..._Maps/NLR_*`` maps
    are the NLR targets.

Targets come from ``source="truth"`` (the phantom's true maps) or ``source="nlr"``: the
UniToBrain NLR maps, or for a phantom `ctpmaps.pipeline.compute_maps` with the box NLR model
on the filtered frames (as UniToBrain's maps were made), cached. The brain mask is the
phantom's true mask, else the automatic CT brain mask; it restricts ``mse_brain`` (and the
loss with ``masked_loss``).

Everything derived (filtered, normalised frames; NLR maps) is cached as safetensors under
``cache_dir``, keyed by the source file's size and time, the settings and a checksum of the
code that made it (filter, brain mask, NLR fit; docstrings and comments left out), so a
changed filter or fit is not served stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from ..io.nifti import read_nifti_map, read_nifti_study
from ..io.study import Study
from ..io.unitobrain import MAP_FOLDERS, find_unitobrain_patients, read_unitobrain_maps
from .cache import INPUT_CODE, NLR_CODE, cache_key, cached, code_stamp, file_stamp
from .normalise import (
    TARGET_RANGES,
    frames_to_slices,
    map_to_slices,
    normalise_frames,
    normalise_target,
    subsample_frames,
)
from .scale import input_scale, scaled
from .unet import DIVISOR

__all__ = [
    "SOURCES",
    "Cohort",
    "PatientSlices",
    "SliceDataset",
    "find_cohort",
    "frame_selection",
    "load_patient",
    "pad_slices",
    "resize_slices",
    "UNITOBRAIN_SIGMAS",
]


#: Where targets come from.
SOURCES = ("nlr", "truth")
#: Normalised value of air (-1000 HU): what slices are padded with.
AIR = float(normalise_frames(np.float32(-1000.0)))
#: Guided bilateral filter (spatial mm, range HU) of UniToBrain's filtered frames, and the
#: default of phantom cohorts (the seed's).
UNITOBRAIN_SIGMAS = (3.0, 20.0)


@dataclass(frozen=True)
class Cohort:
    """A cohort folder: its layout and patients (sorted)."""

    root: Path
    layout: str
    patients: tuple[str, ...]


def find_cohort(root: str | Path) -> Cohort:
    """Recognise a cohort folder (``phantom`` or ``unitobrain`` layout).

    Raises
    ------
    InputError
        Not a folder, or no patient of either layout in it.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "expected a cohort folder")
    ubrain = find_unitobrain_patients(root)
    if ubrain:
        return Cohort(root, "unitobrain", tuple(ubrain))
    phantom = sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "ctp.nii.gz").is_file())
    if phantom:
        return Cohort(root, "phantom", tuple(phantom))
    raise InputError(
        root,
        "no patients: expected <patient>/ctp.nii.gz folders (phantom layout) or "
        "UniToBrain <patient>_Registered_Filtered_3mm_20HU folders",
    )


@dataclass
class PatientSlices:
    """One patient's slices, ready for the network.

    Attributes
    ----------
    patient : str
    inputs : ndarray, shape (z, T, H, W), float16
        Normalised preprocessed frames (float16 halves the memory; the values lie in
        [-0.75, 2.42] where float16 keeps 3 significant digits).
    target : ndarray, shape (z, H, W), float32
        The map on [0, 1].
    mask : ndarray, shape (z, H, W), bool
        Brain.
    spacing_mm : (float, float)
        Pixel size ``(x, y)`` in mm (``W``, ``H``).
    filter_sigmas : (float, float)
        Guided bilateral filter of the frames: spatial sigma (mm), range sigma (HU).
    shifted : tuple of ndarray
        With ``time_shift`` (`load_patient`): the T frames starting 1, 2, ... stride - 1
        acquisition frames later, each shaped as ``inputs``; empty otherwise.
    shift_step : float
        Change of the normalised target per acquisition frame of shift (minus the frame
        interval over the range for TTP, 0 for the maps that do not depend on when the
        acquisition starts).
    """

    patient: str
    inputs: np.ndarray
    target: np.ndarray
    mask: np.ndarray
    spacing_mm: tuple[float, float] = (1.0, 1.0)
    filter_sigmas: tuple[float, float] = UNITOBRAIN_SIGMAS
    shifted: tuple[np.ndarray, ...] = ()
    shift_step: float = 0.0


def _read_frames(cohort: Cohort, pid: str, sigmas: tuple[float, float]) -> Study:
    if cohort.layout == "unitobrain":
        from ..io.unitobrain import read_unitobrain_study

        return read_unitobrain_study(cohort.root, patient_id=pid, stage="filtered")
    from ..preprocess.bilateral import filter_study

    study = read_nifti_study(cohort.root / pid / "ctp.nii.gz")
    return filter_study(study, sigma_spatial_mm=sigmas[0], sigma_range_hu=sigmas[1])


def _check_sigmas(cohort: Cohort, sigmas) -> tuple[float, float]:
    try:
        spatial, range_hu = (float(v) for v in sigmas)
    except (TypeError, ValueError):
        raise InputError("filter_sigmas", f"expected (mm, HU), got {sigmas!r}") from None
    if not (spatial >= 0 and range_hu > 0):
        raise InputError("filter_sigmas", f"expected mm >= 0 and HU > 0, got {sigmas!r}")
    if cohort.layout == "unitobrain" and (spatial, range_hu) != UNITOBRAIN_SIGMAS:
        raise InputError(
            "filter_sigmas",
            f"a UniToBrain cohort's frames are filtered with {UNITOBRAIN_SIGMAS} (mm, HU) "
            f"already, got {sigmas!r}",
        )
    return spatial, range_hu


def _source_stamp(cohort: Cohort, pid: str) -> str:
    if cohort.layout == "phantom":
        return file_stamp(cohort.root / pid / "ctp.nii.gz")
    folder = cohort.root / f"{pid}_Registered_Filtered_3mm_20HU"
    files = sorted(folder.glob("*"))
    return f"{folder.resolve()}:{len(files)}:{max((file_stamp(f) for f in files), default='')}"


def _inputs_and_mask(cohort: Cohort, pid: str, cache_dir, state: dict) -> dict[str, np.ndarray]:
    """All frames normalised (float16), brain mask, frame times and pixel size; cached.
    With ``state["reference"]`` (HU s) the enhancement is scaled to that input-function
    area first (`ctpmaps.nn.scale`; ``input_scale``: the study's area and baseline)."""
    sigmas, reference = state["sigmas"], state.get("reference")

    def make() -> dict[str, np.ndarray]:
        study = state.setdefault("study", _read_frames(cohort, pid, sigmas))
        truth_mask = cohort.root / pid / "truth" / "brain_mask.nii.gz"
        if cohort.layout == "phantom" and truth_mask.is_file():
            mask = np.asarray(read_nifti_map(truth_mask)[0]) > 0
        else:
            from ..preprocess.brainmask import ct_brain_mask

            mask = ct_brain_mask(study.frames, study.spacing)
        out = {}
        frames = study.frames
        if reference is not None:
            scale = input_scale(study, brain=mask)
            frames = scaled(study, scale, reference).frames
            out["input_scale"] = np.array([scale.area_hu_s, scale.baseline_frames], np.float64)
        return out | {
            "inputs": frames_to_slices(frames).astype(np.float16),
            "mask": map_to_slices(mask).astype(np.uint8),
            "times": study.times.astype(np.float64),
            "spacing": np.asarray(study.spacing[:2], dtype=np.float64),
        }

    filt = f"bilateral {sigmas[0]:g} mm {sigmas[1]:g} HU"
    code = code_stamp(*INPUT_CODE)
    if reference is not None:  # the scale depends on the input-function search too
        filt += f", enhancement to {reference:g} HU s"
        code = code_stamp(*INPUT_CODE, "nn.scale", "perfusion")
    key = cache_key(_source_stamp(cohort, pid), filt, "spacing", code)
    return cached(cache_dir, f"{pid}/inputs-{key}.safetensors", make)


def frame_selection(
    cohort: Cohort,
    patient: str,
    n_frames: int | None,
    cache_dir: str | Path | None = None,
    *,
    filter_sigmas: tuple[float, float] = UNITOBRAIN_SIGMAS,
    enhancement_scale: float | None = None,
) -> dict[str, list]:
    """Indices and times (s) of the frames a patient's slices keep (`subsample_frames`);
    ``filter_sigmas`` and ``enhancement_scale`` as for `load_patient` (the cache entry)."""
    state = {"sigmas": _check_sigmas(cohort, filter_sigmas), "reference": enhancement_scale}
    arrays = _inputs_and_mask(cohort, patient, Path(cache_dir) if cache_dir else None, state)
    idx = subsample_frames(arrays["times"].size, n_frames)
    return {"indices": idx.tolist(), "times": arrays["times"][idx].tolist()}


def _target_map(cohort: Cohort, pid: str, target: str, source: str, cache_dir, state: dict):
    if source == "truth":
        if cohort.layout != "phantom":
            raise InputError(
                "target_source",
                "a UniToBrain cohort holds NLR maps only: use --target-source nlr",
            )
        path = cohort.root / pid / "truth" / f"{target}.nii.gz"
        if not path.is_file():
            raise InputError(path, f"missing: the true {target.upper()} map of {pid}")
        return np.asarray(read_nifti_map(path)[0], dtype=np.float32)
    if cohort.layout == "unitobrain":
        if target not in MAP_FOLDERS:
            raise InputError(
                "target", f"UniToBrain has NLR maps of {sorted(MAP_FOLDERS)} only, not {target!r}"
            )
        return read_unitobrain_maps(cohort.root, pid)[target]

    def make() -> dict[str, np.ndarray]:
        from ..perfusion.maps import compute_maps

        study = state.setdefault("study", _read_frames(cohort, pid, state["sigmas"]))
        return compute_maps(study, method="nlr").maps.as_dict()

    filt = "nlr on bilateral" + (
        "" if state["sigmas"] == UNITOBRAIN_SIGMAS else str(state["sigmas"])
    )
    key = cache_key(_source_stamp(cohort, pid), filt, code_stamp(*NLR_CODE))
    return cached(cache_dir, f"{pid}/nlr-{key}.safetensors", make)[target]


def load_patient(
    cohort: Cohort,
    patient: str,
    *,
    target: str,
    source: str = "truth",
    n_frames: int | None = None,
    cache_dir: str | Path | None = None,
    filter_sigmas: tuple[float, float] = UNITOBRAIN_SIGMAS,
    time_shift: bool = False,
    enhancement_scale: float | None = None,
) -> PatientSlices:
    """Slices of one patient: normalised preprocessed frames, target on [0, 1], brain mask.

    Parameters
    ----------
    cohort : Cohort
        From `find_cohort`.
    patient : str
        One of ``cohort.patients``.
    target : str
        Map name (`TARGET_RANGES`).
    source : {"truth", "nlr"}
        The phantom's true maps, or NLR maps (UniToBrain's, or computed and cached).
    n_frames : int or None
        Frames T kept by uniform stride from frame 0 (`subsample_frames`); all by default.
    cache_dir : path or None
        Where derived arrays are cached; None computes everything each time.
    filter_sigmas : (float, float)
        Guided bilateral filter (spatial sigma mm, range sigma HU) of a phantom cohort's
        frames (and of the frames its NLR targets are fitted on); the seed's 3 mm / 20 HU by
        default, the only setting of UniToBrain's filtered frames.
    time_shift : bool
        Also keep the T frames that start 1 to stride - 1 acquisition frames later
        (`PatientSlices.shifted`, for `ctpmaps.nn.train.TrainConfig.time_shift`).
    enhancement_scale : float or None
        Input-function area (HU s) to scale each study's enhancement to before the window
        (`ctpmaps.nn.scale`; the automatic AIF is searched on the filtered frames); None
        (default) leaves the frames as they are.

    Returns
    -------
    PatientSlices

    Raises
    ------
    InputError
        Unknown target or source, a patient not in the cohort, a map on another grid than
        the frames, or ``time_shift`` on frames that are not equally spaced.
    FitError
        ``enhancement_scale`` on a study whose automatic input function is not found.
    """
    if target not in TARGET_RANGES:
        raise InputError("target", f"expected one of {list(TARGET_RANGES)}, got {target!r}")
    if source not in SOURCES:
        raise InputError("target_source", f"expected one of {SOURCES}, got {source!r}")
    if patient not in cohort.patients:
        raise InputError("patient", f"no patient {patient!r} in {cohort.root}")
    cache = Path(cache_dir) if cache_dir is not None else None
    if enhancement_scale is not None and not enhancement_scale > 0:
        raise InputError("enhancement_scale", f"expected an area > 0 HU s, got {enhancement_scale}")
    state: dict = {"sigmas": _check_sigmas(cohort, filter_sigmas), "reference": enhancement_scale}
    arrays = _inputs_and_mask(cohort, patient, cache, state)
    idx = subsample_frames(arrays["times"].size, n_frames)
    inputs = np.ascontiguousarray(arrays["inputs"][:, idx])
    values = _target_map(cohort, patient, target, source, cache, state)
    target_slices = normalise_target(map_to_slices(values), target)
    if target_slices.shape != arrays["mask"].shape:
        raise InputError(
            f"{patient} {target}",
            f"map shape {target_slices.shape[::-1]} differs from the frames' "
            f"{arrays['mask'].shape[::-1]}",
        )
    spacing = tuple(float(v) for v in arrays["spacing"])
    mask = arrays["mask"].astype(bool)
    shifted, step = (), 0.0
    if time_shift:
        shifted, step = _shifted_frames(arrays, idx, target, patient)
    return PatientSlices(
        patient, inputs, target_slices, mask, spacing, state["sigmas"], shifted, step
    )


def _shifted_frames(arrays: dict, idx: np.ndarray, target: str, patient: str):
    """The kept frames moved 1 .. stride - 1 acquisition frames later, and the change of
    the normalised target per frame of shift (`PatientSlices.shifted`, ``shift_step``)."""
    times = arrays["times"]
    steps = np.diff(times)
    if steps.size and not np.allclose(steps, steps[0], rtol=1e-3, atol=1e-3):
        raise InputError(
            f"{patient} frames",
            "a time shift needs equally spaced frames, got intervals "
            f"{steps.min():g} to {steps.max():g} s",
        )
    stride = times.size // idx.size  # as subsample_frames
    shifted = tuple(np.ascontiguousarray(arrays["inputs"][:, idx + k]) for k in range(1, stride))
    low, high = TARGET_RANGES[target]
    step = -float(steps[0]) / (high - low) if target == "ttp" and steps.size else 0.0
    return shifted, step


def pad_slices(x: torch.Tensor, value: float, divisor: int = DIVISOR) -> torch.Tensor:
    """Pad (..., H, W) at the bottom and right up to multiples of ``divisor``."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % divisor, (-w) % divisor
    if not (ph or pw):
        return x
    return F.pad(x, (0, pw, 0, ph), value=value)


def resize_slices(x: torch.Tensor, size: int, *, is_mask: bool = False) -> torch.Tensor:
    """Down-sample (N, C, H, W) by area averaging so that the longer side is ``size``.

    Sizes are kept unchanged when already no larger. Masks keep pixels more than half
    inside.
    """
    h, w = x.shape[-2:]
    if max(h, w) <= size:
        return x
    scale = size / max(h, w)
    out_size = (max(1, round(h * scale)), max(1, round(w * scale)))
    y = F.interpolate(x.float(), size=out_size, mode="area")
    return y > 0.5 if is_mask else y.to(x.dtype)


class SliceDataset(torch.utils.data.Dataset):
    """All slices of some patients as ``(inputs, target, mask)`` tensors.

    Parameters
    ----------
    patients : sequence of PatientSlices
    size : int or None
        Longer side after area down-sampling (the seed's 128 x 128 pre-training); None
        keeps the full resolution. Slices are then padded to multiples of 16.
    time_shift : bool
        Keep the patients' time-shifted frames (`PatientSlices.shifted`): after
        `draw_shifts`, each item starts its frames that many acquisition frames later and
        its target moves accordingly. Without it, or before a draw, items start at frame 0.

    Items are ``(x (T, H, W) float32, y (1, H, W) float32 in [0, 1], m (1, H, W) bool)``.

    Attributes
    ----------
    hw : (int, int)
        Height and width of the slices before padding.
    pixel_mm : (float, float)
        Pixel size ``(x, y)`` in mm of the slices after down-sampling (the median over the
        patients): the grid a network trained on them learns.
    """

    def __init__(self, patients, size: int | None = None, *, time_shift: bool = False) -> None:
        if not patients:
            raise InputError("patients", "expected at least one patient")
        phases = {len(p.shifted) for p in patients} if time_shift else {0}
        if len(phases) != 1:
            raise InputError("patients", f"time-shifted frames differ in number: {phases}")
        xs, ys, ms, xs_hw, pixels = [], [], [], [], []
        shifted: list[list[torch.Tensor]] = [[] for _ in range(phases.pop())]
        steps = []
        for p in patients:
            full_hw = p.inputs.shape[-2:]
            y = torch.from_numpy(p.target)[:, None]
            m = torch.from_numpy(p.mask)[:, None]
            frames = [torch.from_numpy(a) for a in (p.inputs, *p.shifted[: len(shifted)])]
            if size is not None:
                frames = [resize_slices(a, size) for a in frames]
                y, m = resize_slices(y, size), resize_slices(m, size, is_mask=True)
            x = frames[0]
            xs_hw.append(x.shape[-2:])
            pixels.append([p.spacing_mm[i] * full_hw[1 - i] / x.shape[-1 - i] for i in (0, 1)])
            xs.append(pad_slices(x, AIR))
            for store, a in zip(shifted, frames[1:], strict=True):
                store.append(pad_slices(a, AIR))
            ys.append(pad_slices(y, 0.0))
            ms.append(pad_slices(m, False))
            steps += [p.shift_step] * x.shape[0]
        shapes = {tuple(x.shape[1:]) for x in xs}
        if len(shapes) != 1:
            raise InputError("patients", f"slices differ in (T, H, W) between patients: {shapes}")
        #: Height and width of the slices before padding (metrics ignore the padding).
        self.hw = tuple(int(v) for v in xs_hw[0])
        self.pixel_mm = tuple(float(v) for v in np.median(np.array(pixels), axis=0))
        self.inputs = torch.cat(xs)
        self.targets = torch.cat(ys)
        self.masks = torch.cat(ms)
        self.patients = [p.patient for p in patients for _ in range(p.inputs.shape[0])]
        #: Inputs starting 1, 2, ... acquisition frames later (``time_shift``).
        self.shifted = [torch.cat(store) for store in shifted]
        self._steps = torch.tensor(steps, dtype=torch.float32)
        self._shifts: torch.Tensor | None = None

    def draw_shifts(self, generator: torch.Generator) -> None:
        """Draw each item's time shift (0 to stride - 1 acquisition frames, uniform)."""
        n = len(self.shifted) + 1
        self._shifts = torch.randint(0, n, (len(self),), generator=generator)

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        k = 0 if self._shifts is None else int(self._shifts[i])
        if k == 0:
            return self.inputs[i].float(), self.targets[i], self.masks[i]
        y = self.targets[i]
        y = torch.where(y > 0, (y + k * self._steps[i]).clamp(0.0, 1.0), y)
        return self.shifted[k - 1][i].float(), y, self.masks[i]

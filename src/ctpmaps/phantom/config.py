"""Settings of the digital CTP phantom: acquisition presets and per-patient randomness.

Every number a phantom study depends on lives here, with its unit, so that one JSON
(``truth.json``) records the whole forward model of a study.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from ..physics import BRAIN_DENSITY, HEMATOCRIT_FACTOR

__all__ = [
    "Acquisition",
    "PhantomConfig",
    "HeterogeneousSettings",
    "MODELS",
    "ACQUISITION_PRESETS",
    "acquisition_preset",
]

#: Forward models of the phantom: the default ``heterogeneous`` (gap-free lesions, mixed
#: residue shapes, non-gamma inputs, truth masks from thresholds on the true maps) and the
#: earlier ``classic`` one (drawn zones, one residue shape per patient, gamma-variate AIF).
MODELS = ("heterogeneous", "classic")


@dataclass(frozen=True)
class Acquisition:
    """Scanner protocol of one CTP acquisition.

    Defaults follow the seed study (GE 64-slice, 80 kV, 150 mAs, 89 frames at 0.5 s,
    8 slices of 5 mm, 512 x 512 over a 250 mm field of view).

    Attributes
    ----------
    n_frames : int
        Number of time frames.
    frame_interval_s : float
        Time between frames in s (uniform unless `frame_times_s` is given).
    frame_times_s : tuple of float or None
        Explicit frame times in s from the first frame (overrides the two above).
    n_slices : int
        Number of axial slices.
    slice_thickness_mm : float
        Reconstructed slice thickness (= spacing) in mm.
    matrix : int
        In-plane matrix size (square).
    fov_mm : float
        Reconstruction field of view in mm.
    kvp : float
        Tube voltage in kV (recorded in DICOM).
    exposure_mas : float
        Tube current-time product per rotation in mAs; noise scales as 1/sqrt(mAs).
    noise_sigma_hu_at_150mas : float
        Standard deviation of CT noise in HU at 150 mAs (5 mm slices, soft-tissue kernel),
        on 0.49 mm pixels (512 over 250 mm); coarser grids have less (see
        `ctpmaps.phantom.simulate.noise_sigma_on_grid`).
    """

    n_frames: int = 89
    frame_interval_s: float = 0.5
    frame_times_s: tuple[float, ...] | None = None
    n_slices: int = 8
    slice_thickness_mm: float = 5.0
    matrix: int = 512
    fov_mm: float = 250.0
    kvp: float = 80.0
    exposure_mas: float = 150.0
    noise_sigma_hu_at_150mas: float = 12.0

    def __post_init__(self) -> None:
        if self.matrix < 32:
            raise ValueError(f"matrix: expected at least 32, got {self.matrix}")
        if self.n_slices < 1 or self.n_frames < 2:
            raise ValueError(
                f"n_slices, n_frames: expected >= 1 and >= 2, got {self.n_slices}, {self.n_frames}"
            )
        if self.exposure_mas <= 0:
            raise ValueError(f"exposure_mas: expected > 0, got {self.exposure_mas}")
        if self.frame_times_s is not None:
            t = np.asarray(self.frame_times_s, dtype=float)
            if t.shape != (self.n_frames,) or t[0] != 0 or np.any(np.diff(t) <= 0):
                raise ValueError(
                    "frame_times_s: expected n_frames strictly increasing times starting at 0"
                )

    @property
    def times(self) -> np.ndarray:
        """Frame times in s from the first frame, shape (n_frames,)."""
        if self.frame_times_s is not None:
            return np.asarray(self.frame_times_s, dtype=np.float64)
        return np.arange(self.n_frames, dtype=np.float64) * self.frame_interval_s

    @property
    def pixel_mm(self) -> float:
        """In-plane pixel size in mm."""
        return self.fov_mm / self.matrix

    @property
    def noise_sigma_hu(self) -> float:
        """Noise SD in HU at this dose on 0.49 mm pixels: sigma_150 * sqrt(150 / mAs)."""
        return self.noise_sigma_hu_at_150mas * float(np.sqrt(150.0 / self.exposure_mas))


def _shuttle_times() -> tuple[float, ...]:
    # Shuttle mode: the table moves back and forth between two 40 mm positions, so each
    # position is imaged about every 2.8 s (18 frames over ~48 s).
    return tuple(round(2.8 * k, 3) for k in range(18))


#: Named protocols: ``seed`` (the paper's GE cine protocol) and ``shuttle``.
ACQUISITION_PRESETS: dict[str, Acquisition] = {
    "seed": Acquisition(),
    "shuttle": Acquisition(
        n_frames=18, frame_interval_s=2.8, frame_times_s=_shuttle_times(), n_slices=16
    ),
}


def acquisition_preset(name: str, **overrides: Any) -> Acquisition:
    """An `Acquisition` from a preset name with some fields replaced."""
    if name not in ACQUISITION_PRESETS:
        raise ValueError(f"preset: expected one of {sorted(ACQUISITION_PRESETS)}, got {name!r}")
    return replace(ACQUISITION_PRESETS[name], **overrides)


def _check_range(name: str, lo_hi: tuple[float, float], lo: float, hi: float) -> None:
    a, b = lo_hi
    if not lo <= a <= b <= hi:
        raise ValueError(f"{name}: expected lo <= hi within [{lo}, {hi}], got {lo_hi}")


@dataclass(frozen=True)
class HeterogeneousSettings:
    """Ranges of the default (``heterogeneous``) forward model; see ``docs/phantom.md``.

    Each patient draws its own values within these ranges; ranges are (low, high).

    Attributes
    ----------
    core_target_ml : tuple of float
        Log-uniform range of the volume inside which the lesion's own relative CBF falls
        below 0.30 (mL in the slab); the true core, from the threshold rule, follows it
        roughly.
    hypoperfusion_ratio : tuple of float
        Range of the volume with a delay field above its midpoint over the core target.
    lesion_delay_s : tuple of float
        Range of the lesion's delay at the edge of its hypoperfusion target, s.
    max_delay_s : float
        Largest arterial delay anywhere, s.
    hemispheric_delay_s : tuple of float
        Range of the extra delay over the whole affected MCA territory (slow collaterals), s.
    healthy_delay_s : tuple of float
        Range of the delay of healthy tissue (a smooth random field), s.
    healthy_dispersion_s : tuple of float
        Range of the transport-kernel time constant of healthy tissue, s.
    lesion_dispersion_s : tuple of float
        Range of the extra time constant at the lesion's most delayed point, s.
    healthy_shape_k : tuple of float
        Log-uniform range of the residue shape parameter in healthy tissue (1 =
        exponential; large = box-like).
    mtt_cv : float
        Spread (SD of the log) of healthy MTT around each tissue class's mean.
    rcbf_min : float
        Lowest CBF of lesion tissue relative to its own healthy value.
    late_bolus_fraction : float
        Share of patients whose bolus arrives late (14-22 s after the first frame).
    vof_area_ratio : tuple of float
        Range of the area of the venous output over that of the arterial input.
    sinus_fill : tuple of float
        Range of a factor on the blood fraction of every sinus voxel, a stress option.
        The sinus's partial volume is geometric (`ctpmaps.phantom.vessels`: its edges,
        5 mm slices, the PSF), so voxels at the centre of its lumen are pure blood, as in
        a real sinus of 7-9 mm. Below 1, every voxel of the lumen is part dura/CSF: no
        image tells that from a weaker bolus, and every VOF-scaled CBF and CBV reads
        high by 1/fill (a bias no method can remove, hence off by default).
    skull_base_noise : float
        Noise SD at the skull base (MNI z <= -20 mm) over that at MNI z >= 30 mm.
    noise_in_plane_cv : float
        Amplitude of the smooth random in-plane variation of the noise SD.
    """

    core_target_ml: tuple[float, float] = (1.0, 70.0)
    hypoperfusion_ratio: tuple[float, float] = (1.3, 6.0)
    lesion_delay_s: tuple[float, float] = (2.5, 4.5)
    max_delay_s: float = 10.0
    hemispheric_delay_s: tuple[float, float] = (0.0, 3.0)
    healthy_delay_s: tuple[float, float] = (0.0, 1.5)
    healthy_dispersion_s: tuple[float, float] = (0.0, 0.2)
    lesion_dispersion_s: tuple[float, float] = (1.0, 3.5)
    healthy_shape_k: tuple[float, float] = (3.0, 40.0)
    mtt_cv: float = 0.15
    rcbf_min: float = 0.05
    late_bolus_fraction: float = 0.25
    vof_area_ratio: tuple[float, float] = (0.85, 1.0)
    sinus_fill: tuple[float, float] = (1.0, 1.0)
    skull_base_noise: float = 1.4
    noise_in_plane_cv: float = 0.1

    def __post_init__(self) -> None:
        _check_range("core_target_ml", self.core_target_ml, 0.01, 1e4)
        _check_range("hypoperfusion_ratio", self.hypoperfusion_ratio, 1.0, 100.0)
        _check_range("lesion_delay_s", self.lesion_delay_s, 0.0, self.max_delay_s)
        _check_range("hemispheric_delay_s", self.hemispheric_delay_s, 0.0, self.max_delay_s)
        _check_range("healthy_delay_s", self.healthy_delay_s, 0.0, self.max_delay_s)
        _check_range("healthy_dispersion_s", self.healthy_dispersion_s, 0.0, 10.0)
        _check_range("lesion_dispersion_s", self.lesion_dispersion_s, 0.0, 10.0)
        _check_range("healthy_shape_k", self.healthy_shape_k, 1.0, 1e3)
        _check_range("vof_area_ratio", self.vof_area_ratio, 0.1, 1.0)
        _check_range("sinus_fill", self.sinus_fill, 0.1, 1.0)
        if not 0 < self.rcbf_min < 1:
            raise ValueError(f"rcbf_min: expected in (0, 1), got {self.rcbf_min}")
        if not 0 <= self.late_bolus_fraction <= 1:
            raise ValueError(
                f"late_bolus_fraction: expected in [0, 1], got {self.late_bolus_fraction}"
            )
        for name, value, lowest in (
            ("skull_base_noise", self.skull_base_noise, 1.0),
            ("noise_in_plane_cv", self.noise_in_plane_cv, 0.0),
            ("mtt_cv", self.mtt_cv, 0.0),
        ):
            if value < lowest:
                raise ValueError(f"{name}: expected >= {lowest}, got {value}")


@dataclass(frozen=True)
class PhantomConfig:
    """Forward-model settings shared by every patient of a cohort.

    Tissue values are literature means for CT perfusion in adults (GM CBF 50–80,
    WM 20–30 mL/100 g/min; GM CBV 4–5, WM 2–2.5 mL/100 g; Wintermark et al. 2004,
    Østergaard 2005); each patient draws its own values around them.

    Attributes
    ----------
    acquisition : Acquisition
    model : {"heterogeneous", "classic"}
        Forward model (`MODELS`): ``heterogeneous`` (default) is independent of the fitters'
        assumptions; ``classic`` reproduces the earlier phantom exactly for a given seed.
    gm_cbf, wm_cbf : float
        Mean CBF of grey and white matter in mL/100 g/min.
    gm_cbv, wm_cbv : float
        Mean CBV of grey and white matter in mL/100 g.
    between_patient_cv : float
        Coefficient of variation of a patient's global perfusion level.
    within_patient_cv : float
        Amplitude of the smooth spatial modulation of CBF (classic: of CBF and CBV).
    residue_shapes : tuple of str
        Classic model: shapes a patient's residue function is drawn from.
    normal_fraction : float
        Probability that a patient has normal perfusion (the seed's test set: 3 of 15).
    core_volume_ml : tuple of float
        Classic model: range of the ischemic core volume inside the slab, mL.
    mismatch_ratio : tuple of float
        Classic model: range of hypoperfusion volume / core volume.
    oligaemia_ratio : tuple of float
        Classic model: range of benign oligaemia volume / hypoperfusion volume.
    heterogeneous : HeterogeneousSettings
        Ranges of the heterogeneous model.
    motion_mm, motion_deg : float
        Largest rigid head motion across frames (0 = none), mm and degrees.
    hematocrit_factor, density : float
        (1 - Hct_large) / (1 - Hct_small) and brain density in g/mL (see `ctpmaps.physics`).
    """

    acquisition: Acquisition = field(default_factory=Acquisition)
    model: str = "heterogeneous"
    gm_cbf: float = 60.0
    wm_cbf: float = 24.0
    gm_cbv: float = 4.0
    wm_cbv: float = 2.0
    between_patient_cv: float = 0.12
    within_patient_cv: float = 0.06
    residue_shapes: tuple[str, ...] = ("box", "exponential", "gamma")
    normal_fraction: float = 0.2
    core_volume_ml: tuple[float, float] = (4.0, 40.0)
    mismatch_ratio: tuple[float, float] = (1.5, 4.0)
    oligaemia_ratio: tuple[float, float] = (0.3, 0.6)
    heterogeneous: HeterogeneousSettings = field(default_factory=HeterogeneousSettings)
    motion_mm: float = 0.0
    motion_deg: float = 0.0
    hematocrit_factor: float = HEMATOCRIT_FACTOR
    density: float = BRAIN_DENSITY

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model: expected one of {MODELS}, got {self.model!r}")
        if not 0 <= self.normal_fraction <= 1:
            raise ValueError(f"normal_fraction: expected in [0, 1], got {self.normal_fraction}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dictionary of every setting."""
        d = asdict(self)
        d["acquisition"]["times_s"] = [float(t) for t in self.acquisition.times]
        d["acquisition"]["noise_sigma_hu"] = self.acquisition.noise_sigma_hu
        return d

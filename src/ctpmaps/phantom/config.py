"""Settings of the digital CTP phantom: acquisition presets and per-patient randomness.

Every number a phantom study depends on lives here, with its unit, so that one JSON
(``truth.json``) records the whole forward model of a study.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from ..physics import BRAIN_DENSITY, HEMATOCRIT_FACTOR

__all__ = ["Acquisition", "PhantomConfig", "ACQUISITION_PRESETS", "acquisition_preset"]


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


@dataclass(frozen=True)
class PhantomConfig:
    """Forward-model settings shared by every patient of a cohort.

    Tissue values are literature means for CT perfusion in adults (GM CBF 50–80,
    WM 20–30 mL/100 g/min; GM CBV 4–5, WM 2–2.5 mL/100 g; Wintermark et al. 2004,
    Østergaard 2005); each patient draws its own values around them.

    Attributes
    ----------
    acquisition : Acquisition
    gm_cbf, wm_cbf : float
        Mean CBF of grey and white matter in mL/100 g/min.
    gm_cbv, wm_cbv : float
        Mean CBV of grey and white matter in mL/100 g.
    between_patient_cv : float
        Coefficient of variation of a patient's global perfusion level.
    within_patient_cv : float
        Amplitude of the smooth spatial modulation of CBF and CBV (same factor for both).
    residue_shapes : tuple of str
        Shapes a patient's residue function is drawn from (see `ctpmaps.physics.residue`).
    normal_fraction : float
        Probability that a patient has normal perfusion (the seed's test set: 3 of 15).
    core_volume_ml : tuple of float
        Range of the ischemic core volume inside the slab, mL.
    mismatch_ratio : tuple of float
        Range of hypoperfusion volume / core volume.
    oligaemia_ratio : tuple of float
        Range of benign oligaemia volume / hypoperfusion volume.
    motion_mm, motion_deg : float
        Largest rigid head motion across frames (0 = none), mm and degrees.
    hematocrit_factor, density : float
        (1 - Hct_large) / (1 - Hct_small) and brain density in g/mL (see `ctpmaps.physics`).
    """

    acquisition: Acquisition = field(default_factory=Acquisition)
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
    motion_mm: float = 0.0
    motion_deg: float = 0.0
    hematocrit_factor: float = HEMATOCRIT_FACTOR
    density: float = BRAIN_DENSITY

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dictionary of every setting."""
        d = asdict(self)
        d["acquisition"]["times_s"] = [float(t) for t in self.acquisition.times]
        d["acquisition"]["noise_sigma_hu"] = self.acquisition.noise_sigma_hu
        return d

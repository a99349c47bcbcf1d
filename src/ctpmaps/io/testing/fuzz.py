"""A seeded fuzzer of the study readers: one mutated file per case, every outcome judged.

Each case copies one pristine sample (`samples.write_samples`: DICOM uncompressed, RLE,
JPEG Lossless, enhanced multi-frame; NIfTI with sidecar; 5D NIfTI), changes one file
(`mutations`), reads it with `ctpmaps.io.load_study` and sorts the outcome:

- ``loaded``: read, and the study is sound: finite frames, times finite, from 0, strictly
  increasing and within an hour, a finite non-singular affine with voxel sizes in
  (0, 100] mm, a summary that is strict JSON;
- ``refused``: an `InputError` (the only exception allowed);
- ``failed``: any other exception;
- ``garbage``: read, but the study is not sound (NaN or infinite values, impossible
  geometry or times);
- ``slow`` / ``memory``: more than ``max_seconds`` or ``max_mb`` (traced peak) for one case.

Cases are reproducible: case ``i`` of seed ``s`` draws from ``numpy.random.default_rng((s, i))``.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
import tracemalloc
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import InputError
from ..load import load_study
from ..study import Study
from .mutations import mutate_dicom, mutate_nifti
from .samples import write_samples

__all__ = ["Case", "FuzzReport", "check_loaded", "run_fuzz", "BAD_OUTCOMES"]

#: Outcomes that are defects of the readers.
BAD_OUTCOMES = ("failed", "garbage", "slow", "memory")


@dataclass
class Case:
    """One mutated input and what reading it gave."""

    index: int
    sample: str
    kind: str
    outcome: str
    detail: str
    seconds: float
    peak_mb: float


@dataclass
class FuzzReport:
    """All cases of one run."""

    seed: int
    cases: list[Case] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Cases per outcome."""
        found = Counter(c.outcome for c in self.cases)
        return {k: found.get(k, 0) for k in ("loaded", "refused", *BAD_OUTCOMES)}

    @property
    def bad(self) -> list[Case]:
        """The cases that show a defect (`BAD_OUTCOMES`)."""
        return [c for c in self.cases if c.outcome in BAD_OUTCOMES]

    def kinds(self) -> Counter:
        """Cases per mutation kind, without its variant (``dicom:value:RescaleSlope``)."""
        return Counter(":".join(c.kind.split(":")[:3]) for c in self.cases)

    def lines(self) -> list[str]:
        """A plain-text summary."""
        counts = self.counts()
        out = [
            f"cases={len(self.cases)} seed={self.seed} kinds={len(self.kinds())} "
            + " ".join(f"{k}={v}" for k, v in counts.items()),
            f"max_seconds_per_case={max((c.seconds for c in self.cases), default=0):.2f} "
            f"max_traced_mb_per_case={max((c.peak_mb for c in self.cases), default=0):.1f}",
        ]
        out += [f"BAD {c.index} {c.sample} {c.kind} {c.outcome}: {c.detail}" for c in self.bad]
        return out


def check_loaded(study: Study) -> str:
    """Why a loaded study is not sound ("" when it is)."""
    if not np.isfinite(study.frames).all():
        return "non-finite frames"
    times = study.times
    if not np.isfinite(times).all() or times[0] != 0 or np.any(np.diff(times) <= 0):
        return f"bad times {times.tolist()[:6]}"
    if times[-1] > 3600:
        return f"implausible duration {times[-1]} s"
    if not np.isfinite(study.affine).all() or abs(np.linalg.det(study.affine[:3, :3])) < 1e-9:
        return "non-finite or singular affine"
    if not all(0 < v <= 100 for v in study.spacing):
        return f"implausible voxel size {study.spacing}"
    try:
        json.dumps(study.summary(identifiers=True), allow_nan=False, default=str)
    except ValueError as exc:
        return f"summary not strict JSON ({exc})"
    return ""


def _read(path: Path) -> tuple[str, str]:
    try:
        study = load_study(path)
    except InputError as exc:
        return "refused", str(exc)[:300]
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # what the fuzzer is looking for (a Rust panic included)
        return "failed", f"{type(exc).__name__}: {str(exc)[:300]}"
    why = check_loaded(study)
    return ("garbage", why) if why else ("loaded", "")


def _target(sample: str, root: Path) -> Path:
    return root if sample.startswith("dicom") else next(root.glob("*.nii*"))


def run_fuzz(
    cases: int,
    *,
    seed: int = 0,
    first: int = 0,
    max_seconds: float = 30.0,
    max_mb: float = 512.0,
    workdir: Path | None = None,
    progress: Callable[[Case], None] | None = None,
) -> FuzzReport:
    """Run ``cases`` mutated inputs through `load_study`; see the module docstring.

    Parameters
    ----------
    cases : int
        Number of cases.
    seed : int
        Makes the run reproducible.
    first : int
        Index of the first case (to rerun case ``i`` alone: ``cases=1, first=i``).
    max_seconds, max_mb : float
        Per-case bounds on wall time and traced memory (tracemalloc peak, MB).
    workdir : Path, optional
        Where the samples and cases are written (a temporary folder by default).
    progress : callable, optional
        Called with each finished `Case`.
    """
    report = FuzzReport(seed)
    quiet = [logging.getLogger(name) for name in ("ctpmaps", "pydicom", "nibabel")]
    levels = [logger.level for logger in quiet]
    with (
        tempfile.TemporaryDirectory(prefix="ctpmaps-fuzz-", dir=workdir) as tmp,
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        for logger in quiet:
            logger.setLevel(logging.CRITICAL)
        try:
            samples = write_samples(Path(tmp) / "samples", seed=seed)
            names = sorted(samples)
            for i in range(first, first + cases):
                rng = np.random.default_rng((seed, i))
                sample = names[int(rng.integers(len(names)))]
                case_dir = Path(tmp) / "case"
                shutil.copytree(
                    samples[sample] if sample.startswith("dicom") else samples[sample].parent,
                    case_dir,
                )
                target = _target(sample, case_dir)
                mutate = mutate_dicom if sample.startswith("dicom") else mutate_nifti
                kind = mutate(target, rng)
                tracemalloc.start()
                t0 = time.perf_counter()
                outcome, detail = _read(target)
                seconds = time.perf_counter() - t0
                peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
                tracemalloc.stop()
                if outcome in ("loaded", "refused") and seconds > max_seconds:
                    outcome, detail = "slow", f"{seconds:.1f} s ({detail})"
                elif outcome in ("loaded", "refused") and peak_mb > max_mb:
                    outcome, detail = "memory", f"{peak_mb:.0f} MB ({detail})"
                case = Case(i, sample, kind, outcome, detail, seconds, peak_mb)
                report.cases.append(case)
                if progress is not None:
                    progress(case)
                shutil.rmtree(case_dir)
        finally:
            for logger, level in zip(quiet, levels, strict=True):
                logger.setLevel(level)
    return report

"""Ordering the images of each slice in time: frame times from the best time source."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from ...errors import InputError
from .headers import label
from .image import TIME_NAMES, TIME_SOURCES, Image

__all__ = ["order_frames", "MAX_DURATION_S"]

#: Longest plausible acquisition (s): a CT perfusion series lasts one to a few minutes.
MAX_DURATION_S = 3600.0


def _first_duplicate(images: list[Image], values: np.ndarray) -> tuple[Image, Image] | None:
    """Two images of one slice whose ``values`` agree within 1 ms, if any."""
    slices = np.array([im.slice_index for im in images])
    order = np.lexsort((values, slices))
    same = (np.diff(slices[order]) == 0) & (np.abs(np.diff(values[order])) < 1e-3)
    if not same.any():
        return None
    i = int(np.argmax(same))
    return images[order[i]], images[order[i + 1]]


def _duplicate_error(pair: tuple[Image, Image], what: str) -> InputError:
    a, b = pair
    return InputError(
        b.path,
        f"duplicate frame: {label(a)} and {label(b)} have the same slice "
        f"position ({a.slice_pos:.2f} mm) and {what}",
    )


def _unwrap_midnight(values: np.ndarray, source: str, problems: list[str]) -> np.ndarray:
    """Times without a date that cross midnight: add a day to the early ones."""
    if values.max() - values.min() <= 43200:
        return values
    problems.append(
        f"{TIME_NAMES[source]} crosses midnight (no date given): times after "
        "midnight were moved to the next day"
    )
    return np.where(values < 43200, values + 86400, values)


def _time_values(
    folder: Path, images: list[Image], frame_interval: float | None, problems: list[str]
) -> np.ndarray:
    """One time (s) per image from the best source; see `read_dicom_study` for the order."""
    duplicate = None
    for source in TIME_SOURCES:
        if any(im.times[source] is None for im in images):
            continue
        values = np.array([im.times[source] for im in images], dtype=np.float64)
        if not all(im.dated for im in images) and source != "trigger":
            values = _unwrap_midnight(values, source, problems)
        pair = _first_duplicate(images, values)
        if pair is None:
            if duplicate is not None:
                problems.append(
                    f"{TIME_NAMES[duplicate[0]]} repeats within a slice "
                    f"({label(duplicate[1][0])}, {label(duplicate[1][1])}): frames "
                    f"ordered by {TIME_NAMES[source]}"
                )
            return values
        duplicate = duplicate or (source, pair)
    if frame_interval is not None:
        return _index_values(images, frame_interval, problems)
    if duplicate is not None:
        raise _duplicate_error(duplicate[1], f"time ({TIME_NAMES[duplicate[0]]})")
    for source in TIME_SOURCES:
        lacking = [im for im in images if im.times[source] is None]
        if len(lacking) < len(images):
            raise InputError(
                lacking[0].path,
                f"has no {TIME_NAMES[source]} while other files "
                "of the series do; give the frame interval with --frame-interval S "
                "(frame_interval= in Python) to order frames by InstanceNumber instead",
            )
    raise InputError(
        folder,
        "no AcquisitionDateTime/AcquisitionTime, ContentTime or TriggerTime "
        "in any file: frame times are unknown; give the frame interval with "
        "--frame-interval S (frame_interval= in Python) to order frames by InstanceNumber",
    )


def _index_values(images: list[Image], frame_interval: float, problems: list[str]) -> np.ndarray:
    """Last resort: rank by TemporalPositionIndex or InstanceNumber, times from the interval."""
    if all(im.temporal_index is not None for im in images):
        name, keys = "TemporalPositionIndex", [im.temporal_index for im in images]
    else:
        name, keys = "InstanceNumber", [im.instance for im in images]
        if any(k is None for k in keys):
            lacking = next(im for im, k in zip(images, keys, strict=True) if k is None)
            raise InputError(
                lacking.path,
                "has neither frame times nor an InstanceNumber: its place in time is unknown",
            )
    values = np.array(keys, dtype=np.float64) + np.array([im.frame or 0 for im in images]) * 1e-6
    pair = _first_duplicate(images, values)
    if pair is not None:
        raise _duplicate_error(pair, f"{name} and no frame times")
    ranks = np.empty(len(images))
    slices = np.array([im.slice_index for im in images])
    for s in np.unique(slices):
        idx = np.flatnonzero(slices == s)
        ranks[idx[np.argsort(values[idx])]] = np.arange(len(idx))
    problems.append(
        f"no usable frame times: frames ordered by {name}, "
        f"{frame_interval:g} s apart (frame_interval)"
    )
    return ranks * frame_interval


def _missing_times(ref: np.ndarray, mine: np.ndarray) -> list[float]:
    """Reference times a slice lacks: greedily leave out the one whose removal fits best."""
    kept, missing = list(ref), []
    while len(kept) > len(mine):
        best = min(range(len(kept)), key=lambda j: _misfit(np.delete(kept, j), mine))
        missing.append(kept.pop(best))
    return sorted(missing)


def _misfit(ref: np.ndarray, mine: np.ndarray) -> float:
    n = min(len(ref), len(mine))
    return float(np.abs(ref[:n] - mine[:n]).sum())


def _check_counts(
    folder: Path, per_slice: list[list[Image]], values: dict[int, float], centres: np.ndarray
) -> None:
    """Every slice has the same number of frames, else say which is missing or extra."""
    counts = [len(frames) for frames in per_slice]
    if len(set(counts)) == 1:
        return
    usual = Counter(counts).most_common(1)[0][0]
    ref = np.median([[values[id(im)] for im in f] for f in per_slice if len(f) == usual], axis=0)
    half = 0.5 * float(np.median(np.diff(ref))) if usual > 1 else 0.5
    for s, frames in enumerate(per_slice):
        n = len(frames)
        if n == usual:
            continue
        mine = np.array([values[id(im)] for im in frames])
        head = f"the slice at {centres[s]:.2f} mm has {n} frames, the other slices {usual}"
        if n < usual:
            when = ", ".join(f"{t - ref[0]:.2f} s" for t in _missing_times(ref, mine))
            raise InputError(
                folder,
                f"{head}: missing frame at t = {when} (one of its files is {frames[0].path.name})",
            )
        extra = [im for im, t in zip(frames, mine, strict=True) if np.abs(ref - t).min() > half]
        culprit = extra[0] if extra else frames[-1]
        raise InputError(
            culprit.path, f"{head}; {label(culprit)} has no counterpart in the other slices"
        )


def order_frames(
    folder: Path,
    images: list[Image],
    centres: np.ndarray,
    frame_interval: float | None,
    problems: list[str],
) -> tuple[list[list[Image]], np.ndarray]:
    """Images as ``[slice][frame]`` in time order, and the frame times (s from the first)."""
    raw = _time_values(folder, images, frame_interval, problems)
    values = {id(im): float(v) for im, v in zip(images, raw, strict=True)}
    per_slice: list[list[Image]] = [[] for _ in centres]
    for im in images:
        per_slice[im.slice_index].append(im)
    for frames in per_slice:
        frames.sort(key=lambda im: values[id(im)])
    _check_counts(folder, per_slice, values, centres)
    grid = np.array([[values[id(im)] for im in frames] for frames in per_slice])  # (z, t)
    late, early = grid.max(axis=0), grid.min(axis=0)
    for k in np.flatnonzero(late[:-1] >= early[1:]):
        a = per_slice[int(np.argmax(grid[:, k]))][k]
        b = per_slice[int(np.argmin(grid[:, k + 1]))][k + 1]
        raise InputError(
            b.path,
            f"frame times are not monotonic across slices: frame {k + 2} "
            f"({label(b)}, slice at {b.slice_pos:.2f} mm) is not later than frame "
            f"{k + 1} ({label(a)}, slice at {a.slice_pos:.2f} mm), so frames "
            "cannot be matched across slices",
        )
    times = np.median(grid, axis=0)
    times -= times[0]
    if times[-1] > MAX_DURATION_S:
        source = per_slice[int(np.argmax(grid[:, -1]))][-1]
        raise InputError(
            source.path,
            f"frames span {times[-1]:.0f} s (the last is {label(source)}): not one perfusion "
            f"acquisition (at most {MAX_DURATION_S:.0f} s)",
        )
    if len(times) > 1:
        spread = float((late - early).max())
        interval = float(np.median(np.diff(times)))
        if spread > 0.5 * interval:
            problems.append(
                f"slices of one frame were acquired up to {spread:.2f} s apart, more "
                f"than half the frame interval ({interval:.2f} s); frame times are "
                "the median over slices"
            )
    return per_slice, times

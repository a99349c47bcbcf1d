"""One timer for every stage of the project: seconds per named stage, reported to a
progress callback as each stage starts and ends."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

__all__ = ["Progress", "Stopwatch"]

#: ``progress(stage, None)`` when a stage starts, ``progress(stage, seconds)`` when it ends.
Progress = Callable[[str, "float | None"], None]


class Stopwatch:
    """Seconds per named stage.

    Parameters
    ----------
    progress : callable, optional
        Told when each stage starts and ends (`Progress`).

    Examples
    --------
    >>> clock = Stopwatch()
    >>> with clock.stage("fit"):
    ...     pass
    >>> list(clock.timings)
    ['fit']
    """

    def __init__(self, progress: Progress | None = None) -> None:
        self.timings: dict[str, float] = {}
        self.started = time.perf_counter()
        self._progress = progress or (lambda stage, seconds: None)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the body as stage ``name`` (not recorded if it raises)."""
        self._progress(name, None)
        t0 = time.perf_counter()
        yield
        seconds = time.perf_counter() - t0
        self.timings[name] = seconds
        self._progress(name, seconds)

    def total(self) -> float:
        """Seconds since the stopwatch was made."""
        return time.perf_counter() - self.started

"""Thread count of the parallel steps (private): what a `threads` or `workers` argument
left unset means."""

from __future__ import annotations

import os

from .errors import InputError


def n_threads(threads: int | None) -> int:
    """Threads to use: ``threads``, or the CPUs this process may run on."""
    if threads is None:
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not on Linux
            return max(1, os.cpu_count() or 1)
    if int(threads) < 1:
        raise InputError("threads", f"expected a positive number of threads, got {threads}")
    return int(threads)

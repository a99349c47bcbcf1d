"""Loops compiled by numba, on first use (private).

A few hot spots are plain Python loops over arrays that numpy could only do in many passes
with temporaries (the NLR's ramp-residue sums, the bilateral grid's neighbour lookups).
`jit` compiles such a loop when it is first called: numba is imported then, not when the
package is (the command line starts without it), the compiled code releases the GIL (the
fits' and the filter's worker threads run it side by side) and is cached on disk beside
the module (or in numba's user cache where that is read-only), so a compilation costs
once per installation, a second or two.
"""

from __future__ import annotations

import functools

__all__ = ["jit"]


@functools.cache
def jit(loop):
    """``loop`` compiled by ``numba.njit`` (``nogil=True``, ``cache=True``).

    A helper the loop calls must be compiled first and bound to the name the loop uses
    (the caller's module does this before compiling the loop).
    """
    import numba

    return numba.njit(nogil=True, cache=True)(loop)

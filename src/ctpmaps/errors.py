"""The project's exceptions: one small hierarchy, each message naming what went wrong where.

Exit codes of the command line (`EXIT_CODES`), one per kind of failure, documented in the
README:

====  ================================================================================
0     success
1     an unexpected error (a bug: please report it with the ``--debug`` traceback)
2     bad input or usage: a file that cannot be read, a wrong option, an output folder
      that cannot be used; nothing is computed and nothing is written
3     a fit that cannot proceed (no contrast bolus, no artery found)
4     network weights missing, corrupt or not matching their metadata
5     the outputs could not be written after the computation (disk full ...)
130   interrupted (Ctrl-C); 143 terminated (SIGTERM): partial outputs are removed
====  ================================================================================
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["CtpmapsError", "InputError", "FitError", "WeightsError", "OutputError", "EXIT_CODES"]


class CtpmapsError(Exception):
    """Base class of every error ctpmaps raises on purpose."""

    exit_code = 1


class InputError(CtpmapsError):
    """Input that cannot be used: names the file (or argument) and the problem.

    Parameters
    ----------
    source : str or Path
        The file, folder or argument at fault.
    problem : str
        What was expected and what was found.
    """

    exit_code = 2

    def __init__(self, source: str | Path, problem: str) -> None:
        self.source = str(source)
        self.problem = problem
        super().__init__(f"{self.source}: {problem}")

    def __reduce__(self):
        # picklable (process pools, dask workers send errors back to the caller)
        return (type(self), (self.source, self.problem))


class FitError(CtpmapsError):
    """A model fit that cannot proceed (e.g. an input function with no bolus)."""

    exit_code = 3


class WeightsError(CtpmapsError):
    """Network weights that are missing, corrupt or do not match their metadata."""

    exit_code = 4


class OutputError(CtpmapsError):
    """Outputs that could not be written or moved into place after the computation."""

    exit_code = 5


#: Exit code -> meaning, for the command line's documentation.
EXIT_CODES = {
    0: "success",
    1: "unexpected error (a bug: rerun with --debug and report the traceback)",
    2: "bad input or usage, or an unusable output folder: nothing computed, nothing written",
    3: "a fit that cannot proceed (no contrast bolus, no artery found)",
    4: "network weights missing, corrupt or not matching their metadata",
    5: "outputs could not be written after the computation (disk full ...)",
    130: "interrupted (Ctrl-C): partial outputs removed",
    143: "terminated (SIGTERM): partial outputs removed",
}

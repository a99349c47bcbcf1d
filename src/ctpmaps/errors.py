"""The project's exceptions: one small hierarchy, each message naming what went wrong where."""

from __future__ import annotations

from pathlib import Path

__all__ = ["CtpmapsError", "InputError", "FitError", "WeightsError"]


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


class FitError(CtpmapsError):
    """A model fit that cannot proceed (e.g. an input function with no bolus)."""

    exit_code = 3


class WeightsError(CtpmapsError):
    """Network weights that are missing, corrupt or do not match their metadata."""

    exit_code = 4

"""What every command shares: plain help, consoles, errors turned into one line and an
exit code (`ctpmaps.errors.EXIT_CODES`), stage progress on a terminal or in a log, and
quiet logging (third-party warnings only with ``--verbose``)."""

from __future__ import annotations

import contextlib
import logging
import re
import signal
import sys
from collections.abc import Iterator
from typing import Any, NoReturn

import typer
from rich.console import Console
from typer.core import TyperCommand

from ..errors import CtpmapsError

__all__ = [
    "PlainCommand",
    "console",
    "out",
    "fail",
    "usage_error",
    "guarded",
    "StageDisplay",
    "CountDisplay",
    "setup",
    "fmt",
]

#: Messages and progress (stderr); results (stdout). Soft wrap: a path is never broken.
console = Console(stderr=True, soft_wrap=True, highlight=False)
out = Console(soft_wrap=True, highlight=False)
_state = {"debug": False}


class PlainCommand(TyperCommand):
    """Help like dcm2niix's or TotalSegmentator's: ``Usage: ctpmaps run [OPTIONS] STUDY
    OUT`` and arguments listed by name, not ``{study}`` and ``<path>``."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for p in self.get_params(ctx):
            if p.param_type_name == "argument":
                pieces.append(p.display_name_raw if p.required else f"[{p.display_name_raw}]")
        return pieces

    def format_options(self, ctx: Any, formatter: Any) -> None:
        args, opts = [], []
        for p in self.get_params(ctx):
            if p.param_type_name == "argument":
                args.append((p.display_name_raw, getattr(p, "help", None) or ""))
            else:
                record = p.get_help_record(ctx)
                if record is not None:  # typer brackets a default given as text: unwrap it
                    opts.append(
                        (record[0], re.sub(r"\[default: \((.*)\)\]", r"[default: \1]", record[1]))
                    )
        if args:
            with formatter.section("Arguments"):
                formatter.write_dl(args)
        if opts:
            with formatter.section("Options"):
                formatter.write_dl(opts)


def setup(*, verbose: bool, debug: bool) -> None:
    """Logging and signals of a command: ctpmaps' warnings on the console as ``warning:
    ...``, details with ``verbose``; other libraries' warnings (highdicom, torch ...) are
    captured into the log and shown only with ``verbose``; SIGTERM ends the command like an
    error (exit code 143), so that partial outputs are removed."""
    _state["debug"] = debug
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(levelname_lower)s: %(message)s"))
    handler.addFilter(_lower_level)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("ctpmaps").setLevel(logging.INFO if verbose else logging.WARNING)
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").setLevel(logging.WARNING if verbose else logging.ERROR)
    with contextlib.suppress(ValueError):  # not the main thread: the default stays
        signal.signal(signal.SIGTERM, _terminate)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (test runners swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # noqa: D102
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def _lower_level(record: logging.LogRecord) -> bool:
    record.levelname_lower = record.levelname.lower()
    return True


def _terminate(signum: int, frame: Any) -> NoReturn:
    # turn SIGTERM into an exception so that staging folders are removed on the way out
    raise SystemExit(128 + signum)


def fail(exc: CtpmapsError) -> NoReturn:
    """One line on stderr and the error's exit code (the traceback with ``--debug``)."""
    if _state["debug"]:
        raise exc
    console.print(f"error: {exc}", markup=False)
    raise typer.Exit(code=exc.exit_code)


def usage_error(message: str) -> NoReturn:
    """A wrong combination of options: one line, exit code 2."""
    console.print(f"error: {message}", markup=False)
    raise typer.Exit(code=2)


@contextlib.contextmanager
def guarded() -> Iterator[None]:
    """Project errors, interruptions and bugs end in one line and their exit code."""
    try:
        yield
    except CtpmapsError as exc:
        fail(exc)
    except KeyboardInterrupt:
        console.print("interrupted: partial outputs removed", markup=False)
        raise typer.Exit(code=130) from None
    except typer.Exit:
        raise
    except Exception as exc:  # a bug: say so in one line, traceback with --debug
        if _state["debug"]:
            raise
        console.print(
            f"error: unexpected {type(exc).__name__}: {exc} (a bug: rerun with --debug and "
            "report the traceback)",
            markup=False,
        )
        raise typer.Exit(code=1) from None


class StageDisplay:
    """Stages as they run: a spinner line on a terminal, plain lines in a log or pipe.

    Call it as a `ctpmaps.clock.Progress`; use it as a context manager so that nothing of
    it is left on screen when an error is printed.
    """

    def __init__(self, labels: dict[str, str] | None = None) -> None:
        self.labels = labels or {}
        self._status = None

    def __enter__(self) -> StageDisplay:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def __call__(self, stage: str, seconds: float | None) -> None:
        label = self.labels.get(stage, stage.replace("_", " "))
        if seconds is None:
            if console.is_terminal:
                self._stop()
                self._status = console.status(label)
                self._status.start()
            else:
                console.print(f"{label} ...", markup=False)
            return
        self._stop()
        console.print(f"done: {label} ({seconds:.1f} s)", markup=False)


class CountDisplay:
    """Items done out of a total: a progress bar on a terminal, a line per item otherwise.

    Use as a context manager; call `advance` with a short description of each item done.
    """

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, total, 0
        self._bar = None

    def __enter__(self) -> CountDisplay:
        if console.is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=self.total)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()

    def advance(self, item: str = "") -> None:
        """One more item done."""
        self.done += 1
        if self._bar is not None:
            self._bar.advance(self._task)
        else:
            console.print(f"{self.label}: {self.done}/{self.total} {item}".rstrip(), markup=False)


def fmt(value: Any, digits: int = 1) -> str:
    """A number for a table: ``-`` for None, yes/no for booleans."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)

"""The command line: a thin typer layer, one module per command, each one call into the
Python API (`ctpmaps.pipeline`, `ctpmaps.phantom`, `ctpmaps.nn`, `ctpmaps.io`).

Errors print one line and exit with their code (`ctpmaps.errors.EXIT_CODES`); ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

from typing import Annotated

import typer

from .. import __version__
from ..errors import EXIT_CODES
from .batch import batch_command
from .common import PlainCommand, out, setup
from .demo import demo_command
from .evaluate import evaluate_command
from .info import info_command
from .methods import methods_command
from .phantom import phantom_command
from .predict import predict_command
from .preprocess import preprocess_command
from .run import maps_command, run_command
from .train import train_command

__all__ = ["app", "main"]

_EPILOG = "Exit codes: " + "; ".join(f"{k} {v}" for k, v in EXIT_CODES.items()) + "."

app = typer.Typer(
    name="ctpmaps",
    help="CT perfusion maps for acute ischemic stroke, with a digital CTP phantom.",
    epilog=_EPILOG,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        out.print(f"ctpmaps {__version__}", markup=False)
        raise typer.Exit()


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    verbose: Annotated[
        bool,
        typer.Option("--verbose", "-v", help="Log details, and other libraries' warnings."),
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """CT perfusion maps for acute ischemic stroke."""
    setup(verbose=verbose, debug=debug)


for _name, _command in (
    ("run", run_command),
    ("maps", maps_command),
    ("batch", batch_command),
    ("evaluate", evaluate_command),
    ("preprocess", preprocess_command),
    ("predict", predict_command),
    ("train", train_command),
    ("phantom", phantom_command),
    ("info", info_command),
    ("methods", methods_command),
    ("demo", demo_command),
):
    app.command(_name, cls=PlainCommand)(_command)

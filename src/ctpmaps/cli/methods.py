"""``ctpmaps methods``: the methods that make maps, from the registry."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from .common import out

__all__ = ["methods_command"]


def methods_command(
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print docs/methods.md instead of a table.")
    ] = False,
) -> None:
    """The methods --method accepts: what each is, its model and its core threshold."""
    from ..perfusion.methods import METHODS, methods_markdown

    if markdown:
        out.print(methods_markdown(), markup=False, end="")
        return
    table = Table(title="methods (ctpmaps.perfusion.METHODS)")
    for col in ("name", "what", "core threshold (rCBF)", "reference"):
        table.add_column(col)
    for m in METHODS.values():
        table.add_row(m.name, m.label, f"{m.core_rcbf:g}", m.reference)
    out.print(table)

"""Command line of the clinical outputs (``ctpmaps run``): registered on `ctpmaps.cli.app`."""

from __future__ import annotations

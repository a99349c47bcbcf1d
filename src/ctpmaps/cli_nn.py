"""Command line of the U-Net (``ctpmaps train``, ``ctpmaps predict``): registered on
`ctpmaps.cli.app`."""

from __future__ import annotations

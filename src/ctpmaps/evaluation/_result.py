"""The base of the evaluation's small result records."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..io.tables import jsonable


class Result:
    """Mixin of the frozen result dataclasses: ``as_dict()`` gives plain JSON types."""

    def as_dict(self) -> dict[str, Any]:
        """The fields as a flat dict of plain values (non-finite floats become None)."""
        return jsonable({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})

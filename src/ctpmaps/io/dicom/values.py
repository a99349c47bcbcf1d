"""Header values read once, checked where they are read.

Every value the readers use goes through these getters. pydicom converts an element's
value lazily, when it is first used, and raises many kinds of exception on a malformed
one (a non-numeric DS, an unknown VR, bytes that do not decode); here any failure, and any
value of the wrong multiplicity, non-finite or implausible, becomes an `InputError` naming
the file and the tag.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag

from ...errors import InputError

__all__ = ["tag_name", "raw", "number", "numbers", "integer", "text", "sequence", "MISSING"]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


#: Returned by `raw` for an absent or empty element.
MISSING: Any = _Missing()


def tag_name(keyword: str) -> str:
    """``"RescaleSlope (0028,1053)"``: how messages name an attribute."""
    tag = tag_for_keyword(keyword)
    return keyword if tag is None else f"{keyword} {Tag(tag)}"


#: VRs whose value does not depend on the character set: a converted value is shared by
#: every element with the same bytes. The 712 files of a series repeat most of their values
#: (orientation, spacing, rescale, pixel description, UIDs of the study and series), and
#: pydicom's conversion of each is most of the header pass's time.
_SHARED_VRS = frozenset(
    {"AS", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "SL", "SS", "TM", "UI", "UL", "US"}
)
_converted: dict[tuple, Any] = {}
_CONVERTED_MAX = 4096
_tags: dict[str, int] = {}


def _tag(keyword: str) -> int:
    tag = _tags.get(keyword)
    if tag is None:
        tag = _tags[keyword] = int(tag_for_keyword(keyword))
    return tag


#: VRs whose values are plain ASCII text whatever the character set (PS3.5 6.2).
_ASCII_VRS = frozenset({"AS", "CS", "DA", "DS", "DT", "IS", "TM", "UI"})


def _value(ds: Dataset, tag: int) -> Any:
    """The converted value of element ``tag`` (None when absent), shared by raw bytes.

    An ASCII VR is split on ``\\`` and stripped here (a str, or a list for several
    values), as pydicom would before making its value objects: the readers need the text
    or the numbers, and times and instance UIDs differ in every file.
    """
    elem = ds.get_item(tag)
    if elem is None:
        return None
    if isinstance(elem, RawDataElement) and elem.VR in _ASCII_VRS:
        if isinstance(elem.value, bytes):
            parts = [p.strip(" \x00") for p in elem.value.decode("latin-1").split("\\")]
            return parts[0] if len(parts) == 1 else parts
    key = None
    if isinstance(elem, RawDataElement) and elem.VR in _SHARED_VRS and elem.value is not None:
        key = (tag, elem.VR, elem.is_little_endian, elem.value)
        hit = _converted.get(key, MISSING)  # one lookup: another thread may clear the table
        if hit is not MISSING:
            return hit
    value = ds[tag].value
    if key is not None and len(elem.value) <= 256:
        if len(_converted) >= _CONVERTED_MAX:
            _converted.clear()
        _converted[key] = value
    return value


_checked: dict[tuple, Any] = {}


def _once(ds: Dataset, keyword: str, params: tuple, check: Callable[[], Any]) -> Any:
    """``check()``'s result, computed once per distinct bytes of the element (a check that
    fails is repeated: its error names each file). Arrays come back read-only."""
    elem = ds.get_item(_tag(keyword))
    key = None
    if isinstance(elem, RawDataElement) and elem.VR in _SHARED_VRS and elem.value is not None:
        key = (keyword, params, elem.VR, elem.is_little_endian, elem.value)
        hit = _checked.get(key, MISSING)
        if hit is not MISSING:
            return hit
    result = check()
    if key is not None and len(elem.value) <= 256:
        if isinstance(result, np.ndarray):
            result.flags.writeable = False
        if len(_checked) >= _CONVERTED_MAX:
            _checked.clear()
        _checked[key] = result
    return result


def raw(ds: Dataset, keyword: str, path: Path | str) -> Any:
    """The converted value of ``keyword`` in ``ds``, or `MISSING` when absent or empty."""
    try:
        value = _value(ds, _tag(keyword))
    except Exception as exc:  # pydicom raises many kinds on malformed values
        raise InputError(
            path, f"{tag_name(keyword)}: unreadable value ({type(exc).__name__}: {exc})"
        ) from None
    if value is None or (isinstance(value, (str, bytes, list)) and len(value) == 0):
        return MISSING
    return value


def _floats(value: Any) -> list[float] | None:
    """The value's numbers (one or several), or None when any is not a number."""
    items = [value] if isinstance(value, (str, bytes)) or not isinstance(value, Iterable) else value
    try:
        return [float(v) for v in items]
    except (TypeError, ValueError, OverflowError):
        return None


def numbers(
    ds: Dataset,
    keyword: str,
    path: Path | str,
    count: int,
    *,
    limit: float = 1e6,
    required: bool = True,
) -> np.ndarray | None:
    """``count`` finite numbers, each of magnitude below ``limit``; None when absent and
    not ``required``."""
    check = lambda: _numbers(ds, keyword, path, count, limit, required)  # noqa: E731
    return _once(ds, keyword, ("numbers", count, limit, required), check)


def _numbers(
    ds: Dataset, keyword: str, path: Path | str, count: int, limit: float, required: bool
) -> np.ndarray | None:
    value = raw(ds, keyword, path)
    if value is MISSING:
        if required:
            raise InputError(path, f"{tag_name(keyword)} is missing")
        return None
    found = _floats(value)
    if found is None or len(found) != count:
        shown = str(value)[:60]
        raise InputError(path, f"{tag_name(keyword)}: expected {count} numbers, got {shown!r}")
    if not all(math.isfinite(v) and abs(v) < limit for v in found):
        raise InputError(
            path, f"{tag_name(keyword)}: expected finite values below {limit:g}, got {found}"
        )
    return np.array(found, dtype=np.float64)


def number(
    ds: Dataset,
    keyword: str,
    path: Path | str,
    *,
    default: float | None = None,
    low: float = -1e6,
    high: float = 1e6,
    first: bool = False,
) -> float | None:
    """One finite number in ``[low, high]`` (the first of several when ``first``).

    Absent: ``default``. Several values where one is expected, text that is not a number,
    NaN, infinity or a value out of range: `InputError`.
    """
    check = lambda: _number(ds, keyword, path, default, low, high, first)  # noqa: E731
    return _once(ds, keyword, ("number", default, low, high, first), check)


def _number(
    ds: Dataset,
    keyword: str,
    path: Path | str,
    default: float | None,
    low: float,
    high: float,
    first: bool,
) -> float | None:
    value = raw(ds, keyword, path)
    if value is MISSING:
        return default
    found = _floats(value)
    if found and first:
        found = found[:1]
    if found is None or len(found) != 1:
        raise InputError(path, f"{tag_name(keyword)}: expected one number, got {str(value)[:60]!r}")
    v = found[0]
    if not (math.isfinite(v) and low <= v <= high):
        raise InputError(
            path, f"{tag_name(keyword)}: expected a number in [{low:g}, {high:g}], got {v}"
        )
    return v


def integer(
    ds: Dataset,
    keyword: str,
    path: Path | str,
    *,
    default: int | None = None,
    low: int = -(2**31),
    high: int = 2**31 - 1,
) -> int | None:
    """One integer in ``[low, high]``; ``default`` when absent."""
    value = number(ds, keyword, path, default=None, low=low, high=high)
    if value is None:
        return default
    if value != int(value):
        raise InputError(path, f"{tag_name(keyword)}: expected an integer, got {value}")
    return int(value)


def text(ds: Dataset, keyword: str, path: Path | str, *, default: str = "") -> str:
    """A string value (the first of several), stripped; ``default`` when absent."""
    check = lambda: _text(ds, keyword, path, default)  # noqa: E731
    return _once(ds, keyword, ("text", default), check)


def _text(ds: Dataset, keyword: str, path: Path | str, default: str) -> str:
    value = raw(ds, keyword, path)
    if value is MISSING:
        return default
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = value[0] if len(value) else default
    if isinstance(value, bytes):
        raise InputError(path, f"{tag_name(keyword)}: expected text, got bytes")
    return str(value).strip()


def sequence(ds: Dataset, keyword: str, path: Path | str) -> list[Dataset]:
    """The items of sequence ``keyword`` (none when absent); anything else: `InputError`."""
    value = raw(ds, keyword, path)
    if value is MISSING:
        return []
    if not isinstance(value, Sequence) or not all(isinstance(v, Dataset) for v in value):
        raise InputError(path, f"{tag_name(keyword)}: expected a sequence of items")
    return list(value)

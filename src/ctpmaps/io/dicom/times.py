"""DICOM dates and times (DA, TM, DT) as seconds, for ordering frames.

Seconds are counted from 2000-01-01 (a recent epoch keeps float64 seconds at
sub-microsecond resolution); a TM alone gives seconds since midnight. Unparseable text
gives None: the caller decides whether a time was required.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any

__all__ = ["tm_seconds", "da_seconds", "dt_seconds", "date_time"]

_EPOCH_DAY = _dt.date(2000, 1, 1).toordinal()
_TM = re.compile(r"^(\d{2})(\d{2})?(\d{2})?(\.\d+)?$")
_DT = re.compile(r"^(\d{8})(\d{2,6}(?:\.\d+)?)?([+-]\d{4})?$")


def tm_seconds(value: Any) -> float | None:
    """Seconds since midnight of a DICOM TM (``HHMMSS.FFFFFF``, also ``HH:MM:SS``)."""
    text = str(value or "").strip().replace(":", "")
    m = _TM.match(text)
    if not m:
        return None
    hh, mm, ss, frac = m.groups()
    if int(hh) > 23 or int(mm or 0) > 59 or int(ss or 0) > 60:
        return None
    return int(hh) * 3600 + int(mm or 0) * 60 + int(ss or 0) + float(frac or 0.0)


def da_seconds(value: Any) -> float | None:
    """Seconds from 2000-01-01 to the start of a DICOM DA (``YYYYMMDD``)."""
    text = str(value or "").strip().replace(".", "")
    if not re.fullmatch(r"\d{8}", text):
        return None
    try:
        day = _dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None
    return (day.toordinal() - _EPOCH_DAY) * 86400.0


def dt_seconds(value: Any) -> float | None:
    """Seconds from 2000-01-01 of a DICOM DT (``YYYYMMDDHHMMSS.FFFFFF&ZZXX``)."""
    m = _DT.match(str(value or "").strip())
    if not m:
        return None
    day = da_seconds(m.group(1))
    clock = tm_seconds(m.group(2) or "00")
    return None if day is None or clock is None else day + clock


def date_time(date: Any, time: Any) -> tuple[float | None, bool]:
    """Seconds of a DA + TM pair (the date may be absent); whether a date was used."""
    clock = tm_seconds(time)
    if clock is None:
        return None, False
    day = da_seconds(date)
    return (clock if day is None else day + clock), day is not None

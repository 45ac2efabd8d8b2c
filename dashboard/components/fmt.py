"""Formatting numbers and durations for people."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any


def duration(seconds: Any, precision: int = 1) -> str:
    """``3.2 d``, ``5.0 h``, ``12 min``, ``40 s``; an em dash for missing values."""
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "—"
    s = float(seconds)
    sign = "-" if s < 0 else ""
    s = abs(s)
    if s >= 86400:
        return f"{sign}{s / 86400:.{precision}f} d"
    if s >= 3600:
        return f"{sign}{s / 3600:.{precision}f} h"
    if s >= 60:
        return f"{sign}{s / 60:.0f} min"
    return f"{sign}{s:.0f} s"


def days(seconds: Any) -> float | None:
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return None
    return float(seconds) / 86400


def count(n: Any) -> str:
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return "—"
    return f"{int(n):,}"


def share(x: Any, digits: int = 0) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{100 * float(x):.{digits}f} %"


def when(ts: datetime | None) -> str:
    return ts.strftime("%Y-%m-%d %H:%M") + " UTC" if ts is not None else "—"


def ago(ts: datetime | None, now: datetime) -> str:
    if ts is None:
        return "never"
    return duration((now - ts).total_seconds()) + " ago"

"""Formatting numbers and durations for people."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd


def missing(x: Any) -> bool:
    if x is None:
        return True
    try:
        return bool(pd.isna(x))
    except (TypeError, ValueError):
        return False


def duration(seconds: Any, precision: int = 1) -> str:
    """``3.2 d``, ``5.0 h``, ``12 min``, ``40 s``; an em dash for missing values."""
    if missing(seconds):
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
    if missing(seconds):
        return None
    return float(seconds) / 86400


def count(n: Any) -> str:
    if missing(n):
        return "—"
    return f"{int(n):,}"


def share(x: Any, digits: int = 0) -> str:
    if missing(x):
        return "—"
    return f"{100 * float(x):.{digits}f} %"


def when(ts: datetime | None) -> str:
    return ts.strftime("%Y-%m-%d %H:%M") + " UTC" if ts is not None else "—"


def ago(ts: datetime | None, now: datetime) -> str:
    if ts is None:
        return "never"
    return duration((now - ts).total_seconds()) + " ago"

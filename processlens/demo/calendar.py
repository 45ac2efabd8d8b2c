"""Working calendars in Europe/Berlin, vectorised over epoch seconds.

Warehouse and office people only work in their opening hours on working days; a step that would
fall outside them waits until the next opening. Opening hours (06:00-22:00 at the latest) never
touch the hour that daylight saving time makes ambiguous, so local times written without an
offset (the warehouse CSV) always convert back to the same UTC instant.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np

from processlens.demo.spec import CAL_ALWAYS, CALENDAR_HOURS, DAY, HOUR

EPOCH = date(1970, 1, 1)


def _last_sunday(year: int, month: int) -> date:
    d = date(year, month + 1, 1) - timedelta(days=1) if month < 12 else date(year, 12, 31)
    return d - timedelta(days=(d.weekday() + 1) % 7)


def dst_transitions(first_year: int, last_year: int) -> np.ndarray:
    """UTC epoch seconds of every DST start and end in Europe/Berlin (01:00 UTC on the last Sundays)."""
    out = []
    for y in range(first_year, last_year + 1):
        for month in (3, 10):
            d = _last_sunday(y, month)
            out.append(int(datetime(d.year, d.month, d.day, 1, tzinfo=UTC).timestamp()))
    return np.array(out, dtype=np.int64)


def easter(year: int) -> date:
    """Gregorian Easter Sunday (anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    l = (32 + 2 * e + 2 * i - h - k) % 7  # noqa: E741 - the algorithm's name
    m = (a + 11 * h + 22 * l) // 451
    month = (h + l - 7 * m + 114) // 31
    day = (h + l - 7 * m + 114) % 31 + 1
    return date(year, month, day)


def holidays(year: int) -> set[date]:
    """German nationwide public holidays plus Christmas Eve and New Year's Eve."""
    e = easter(year)
    fixed = {date(year, 1, 1), date(year, 5, 1), date(year, 10, 3), date(year, 12, 24), date(year, 12, 25),
             date(year, 12, 26), date(year, 12, 31)}
    moving = {e - timedelta(days=2), e + timedelta(days=1), e + timedelta(days=39), e + timedelta(days=50)}
    return fixed | moving


class Calendar:
    """Day tables for a span of dates: working days per calendar and the next working day."""

    def __init__(self, first: date, last: date) -> None:
        self.first_day = (first - EPOCH).days
        n = (last - first).days + 1
        self.days = np.arange(self.first_day, self.first_day + n, dtype=np.int64)
        weekday = (self.days + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
        hol = set()
        for y in range(first.year, last.year + 1):
            hol |= holidays(y)
        self.is_holiday = np.isin(self.days, [(d - EPOCH).days for d in hol])
        self.weekday = weekday
        self.transitions = dst_transitions(first.year - 1, last.year + 1)
        self.is_work: dict[int, np.ndarray] = {}
        self.next_work: dict[int, np.ndarray] = {}
        for cal, (_open, _close, saturday) in CALENDAR_HOURS.items():
            work = ~self.is_holiday & ((weekday < 5) | ((weekday == 5) & saturday))
            nxt = np.full(n, n - 1, dtype=np.int64)
            idx = np.flatnonzero(work)
            pos = np.searchsorted(idx, np.arange(n))
            ok = pos < len(idx)
            nxt[ok] = idx[pos[ok]]
            self.is_work[cal] = work
            self.next_work[cal] = nxt

    def offset(self, utc: np.ndarray) -> np.ndarray:
        """Seconds Europe/Berlin is ahead of UTC at the given UTC instants."""
        i = np.searchsorted(self.transitions, utc, side="right")
        return np.where(i % 2 == 1, 2 * HOUR, HOUR).astype(np.int64)

    def to_local(self, utc: np.ndarray) -> np.ndarray:
        return utc + self.offset(utc)

    def from_local(self, local: np.ndarray) -> np.ndarray:
        """UTC of local wall-clock seconds (exact outside 01:00-04:00 local on transition days)."""
        return local - self.offset(local - HOUR)

    def snap(self, utc: np.ndarray, cal: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Move each instant to the next opening hour of its calendar (unchanged when open).

        ``u`` in [0, 1) spreads the snapped events over the first 90 minutes after opening.
        """
        out = utc.copy()
        for code, (open_s, close_s, _sat) in CALENDAR_HOURS.items():
            sel = np.flatnonzero(cal == code)
            if not len(sel):
                continue
            local = self.to_local(utc[sel])
            d = local // DAY - self.first_day
            if d.min() < 0 or d.max() + 1 >= len(self.days):
                raise ValueError("calendar span too short for the generated times")
            sod = local % DAY
            work = self.is_work[code]
            is_open = work[d] & (sod >= open_s) & (sod < close_s)
            before = work[d] & (sod < open_s)
            new_day = np.where(before, d, self.next_work[code][d + 1])
            new_local = (new_day + self.first_day) * DAY + open_s + (u[sel] * min(90 * 60, close_s - open_s - 60)).astype(np.int64)
            moved = self.from_local(new_local)
            out[sel] = np.where(is_open, utc[sel], moved)
        return out

    def day_index(self, utc: np.ndarray) -> np.ndarray:
        """Index into :attr:`days` of the local date of each instant."""
        return self.to_local(utc) // DAY - self.first_day


def always(n: int) -> np.ndarray:
    return np.full(n, CAL_ALWAYS, dtype=np.int8)

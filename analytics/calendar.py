"""Business calendars: durations in working time (working days, hours, holidays, time zone).

Working time between two instants is ``W(b) - W(a)`` where ``W(t)`` counts the working seconds
from a fixed origin up to ``t``. ``W`` is a lookup of the working seconds before the local day of
``t`` plus the working seconds of that day up to the local time of ``t`` — O(1) per timestamp, so
every duration in processlens can be given in working time inside one SQL expression
(:meth:`BusinessCalendar.working_seconds_sql`). :meth:`BusinessCalendar.working_seconds` is the
same definition in Python, for single values and for tests.

Configured per process in ``processlens.toml``::

    [calendar]                      # or [calendars.<process>]
    timezone = "Europe/Berlin"
    workdays = ["Mon", "Tue", "Wed", "Thu", "Fri"]
    hours = ["08:00-12:00", "13:00-17:00"]
    holidays = ["2025-12-25", "2025-12-26"]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from processlens.errors import ConfigError

PAD_DAYS = 366  # days covered beyond the store's first and last event
DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def _parse_hours(spec: str) -> tuple[int, int]:
    try:
        a, b = spec.split("-")
        ha, ma = (int(x) for x in a.strip().split(":"))
        hb, mb = (int(x) for x in b.strip().split(":"))
    except ValueError as exc:
        raise ConfigError(f"working hours {spec!r} are not of the form HH:MM-HH:MM",
                          hint='write e.g. hours = ["09:00-17:00"]', where={"field": "calendar.hours"}) from exc
    start, end = ha * 3600 + ma * 60, hb * 3600 + mb * 60
    if not 0 <= start < end <= 86400:
        raise ConfigError(f"working hours {spec!r} end before they start", where={"field": "calendar.hours"},
                          hint="give the start first and keep both within one day (24:00 at most)")
    return start, end


@dataclass
class BusinessCalendar:
    timezone: str = "UTC"
    workdays: list[str] = field(default_factory=lambda: DAYS[:5])
    hours: list[str] = field(default_factory=lambda: ["09:00-17:00"])
    holidays: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        try:
            self._zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(f"unknown time zone {self.timezone!r} in the calendar", where={"field": "calendar.timezone"},
                              hint="use an IANA name such as Europe/Berlin") from exc
        bad = [d for d in self.workdays if d[:3].title() not in DAYS]
        if bad:
            raise ConfigError(f"unknown working day(s) {bad}", hint=f"use {', '.join(DAYS)}",
                              where={"field": "calendar.workdays"})
        self._weekdays = {DAYS.index(d[:3].title()) for d in self.workdays}
        self._windows = sorted(_parse_hours(h) for h in self.hours)
        for (_, e1), (s2, _) in zip(self._windows, self._windows[1:], strict=False):
            if s2 < e1:
                raise ConfigError("working hours overlap", where={"field": "calendar.hours"}, hint="list disjoint windows")
        try:
            self._holidays = {date.fromisoformat(h) for h in self.holidays}
        except ValueError as exc:
            raise ConfigError(f"a holiday is not an ISO date: {exc}", where={"field": "calendar.holidays"},
                              hint="write holidays as YYYY-MM-DD") from exc
        self._day_seconds = sum(e - s for s, e in self._windows)

    @classmethod
    def from_dict(cls, data: dict) -> BusinessCalendar:
        known = {"timezone", "workdays", "hours", "holidays"}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown calendar key(s) {sorted(unknown)}", hint=f"valid keys: {sorted(known)}")
        return cls(**data)

    @classmethod
    def from_settings(cls, settings, process: str | None = None) -> BusinessCalendar | None:
        """``[calendars.<process>]`` or ``[calendar]`` of processlens.toml, or None when absent."""
        if process and process in settings.raw.get("calendars", {}):
            return cls.from_dict(settings.raw["calendars"][process])
        if "calendar" in settings.raw:
            return cls.from_dict(settings.raw["calendar"])
        return None

    # -- Python reference --------------------------------------------------------------------
    def is_working_day(self, day: date) -> bool:
        return day.weekday() in self._weekdays and day not in self._holidays

    def _local(self, ts: datetime) -> datetime:
        """Naive UTC -> naive local time."""
        return ts.replace(tzinfo=UTC).astimezone(self._zone).replace(tzinfo=None)

    def _within_day(self, seconds: float) -> float:
        return sum(min(max(seconds - s, 0.0), e - s) for s, e in self._windows)

    def working_seconds(self, start: datetime, end: datetime) -> float:
        """Working seconds between two naive-UTC instants (negative when ``end`` is before ``start``)."""
        if end < start:
            return -self.working_seconds(end, start)
        a, b = self._local(start), self._local(end)
        total = 0.0
        day = a.date()
        while day <= b.date():
            if self.is_working_day(day):
                midnight = datetime.combine(day, datetime.min.time())
                lo = (a - midnight).total_seconds() if day == a.date() else 0.0
                hi = (b - midnight).total_seconds() if day == b.date() else 86400.0
                total += self._within_day(hi) - self._within_day(lo)
            day += timedelta(days=1)
        return total

    # -- SQL ------------------------------------------------------------------------------------
    def local_sql(self, ts: str) -> str:
        if self.timezone == "UTC":
            return ts
        return f"timezone('{self.timezone}', timezone('UTC', {ts}))"

    def lookup(self, first: date, last: date) -> tuple[date, list[float], list[int]]:
        """(origin, cumulative working seconds before each day, working-day flags) from first to last."""
        cum, flags, acc = [], [], 0.0
        day = first
        while day <= last:
            w = self.is_working_day(day)
            cum.append(acc)
            flags.append(int(w))
            acc += self._day_seconds if w else 0.0
            day += timedelta(days=1)
        return first, cum, flags

    def w_sql(self, ts: str, first: date, last: date) -> str:
        """SQL for W(ts): working seconds since ``first`` (local days ``first..last`` are covered)."""
        origin, cum, flags = self.lookup(first, last)
        local = self.local_sql(ts)
        idx = f"(date_diff('day', DATE '{origin.isoformat()}', CAST({local} AS DATE)) + 1)"
        secs = f"epoch({local} - CAST(CAST({local} AS DATE) AS TIMESTAMP))"
        within = " + ".join(f"least(greatest({secs} - {s}, 0), {e - s})" for s, e in self._windows)
        cum_list = "[" + ",".join(repr(c) for c in cum) + "]"
        flag_list = "[" + ",".join(str(f) for f in flags) + "]"
        return f"({cum_list}[{idx}] + {flag_list}[{idx}] * ({within}))"

    def working_seconds_sql(self, con, start: str, end: str, until: datetime | None = None) -> str:
        """SQL for the working seconds between two TIMESTAMP (UTC) expressions, sized to the store's span
        (and up to ``until``, default now)."""
        lo, hi = con.execute("SELECT min(least(ts, coalesce(start_ts, ts))), max(ts) FROM events").fetchall()[0]
        if lo is None:
            return "0.0"
        hi = max(hi, until or datetime.now(UTC).replace(tzinfo=None))
        first = (self._local(lo) - timedelta(days=PAD_DAYS)).date()  # instants outside the covered days give NULL
        last = (self._local(hi) + timedelta(days=PAD_DAYS)).date()
        return f"({self.w_sql(end, first, last)} - {self.w_sql(start, first, last)})"


def duration_sql(con, start: str, end: str, calendar: BusinessCalendar | None, until: datetime | None = None) -> str:
    """Seconds from ``start`` to ``end``: calendar time, or working time when a calendar is given."""
    if calendar is None:
        return f"epoch({end} - {start})"
    return calendar.working_seconds_sql(con, start, end, until)

"""The internal reference model: a Petri net plus what the business says about its steps.

Every format (BPMN, PNML, the text format) compiles to a :class:`ReferenceModel`; annotations
(``annotations.py``) fill in owners, SLAs, exception paths, final states, the mapping from
source-system activity names to model tasks and the allowlist of accepted deviations.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from processlens.events import is_action_activity

DEVIATION_TYPES = ("skipped step", "unexpected step", "wrong order", "repeated step")


@dataclass
class Step:
    """One model task: who owns it and how long a case may wait before it happens."""

    name: str
    owner: str | None = None
    sla_seconds: float | None = None
    sla_working: bool = False  # SLA counted in working time of the model's calendar
    exception: bool = False  # an exception event (e.g. "Address Invalid"), not work to be done
    handles: str | None = None  # for a handler step: the exception event it handles
    element_id: str | None = None


@dataclass
class Calendar:
    """Working time: weekdays (0 = Monday) and daily hours in a time zone, minus holidays."""

    timezone: str = "UTC"
    workdays: tuple[int, ...] = (0, 1, 2, 3, 4)
    start: time = time(8, 0)
    end: time = time(17, 0)
    holidays: frozenset[date] = frozenset()

    @property
    def day_seconds(self) -> float:
        return (datetime.combine(date.min, self.end) - datetime.combine(date.min, self.start)).total_seconds()

    def working_seconds(self, start: datetime, end: datetime) -> float:
        """Working seconds between two naive UTC datetimes."""
        if end <= start:
            return 0.0
        zone = ZoneInfo(self.timezone)
        utc = ZoneInfo("UTC")
        s = start.replace(tzinfo=utc).astimezone(zone)
        e = end.replace(tzinfo=utc).astimezone(zone)
        total = 0.0
        day = s.date()
        while day <= e.date():
            if day.weekday() in self.workdays and day not in self.holidays:
                ws = datetime.combine(day, self.start, tzinfo=zone)
                we = datetime.combine(day, self.end, tzinfo=zone)
                lo, hi = max(ws, s), min(we, e)
                if hi > lo:
                    total += (hi - lo).total_seconds()
            day += timedelta(days=1)
        return total


@dataclass
class AllowedDeviation:
    """An accepted deviation: its type and (optionally) the step; matches any step when None."""

    type: str
    step: str | None = None
    reason: str | None = None

    def matches(self, dev_type: str, step: str | None) -> bool:
        return self.type == dev_type and (self.step is None or self.step == step)


@dataclass
class ReferenceModel:
    """A reference workflow model ready for conformance checking."""

    name: str
    kind: str  # bpmn | pnml | text
    net: Any  # pm4py PetriNet
    im: Any
    fm: Any
    steps: dict[str, Step] = field(default_factory=dict)
    final_steps: set[str] = field(default_factory=set)
    exceptions: dict[str, str | None] = field(default_factory=dict)  # exception event -> handler step
    activity_map: dict[str, str] = field(default_factory=dict)  # source activity -> model task
    ignored: set[str] = field(default_factory=set)  # source activities not checked (side activities)
    allowlist: list[AllowedDeviation] = field(default_factory=list)
    calendar: Calendar | None = None
    abandoned_after: float | None = None  # an open case without events this long ended in a non-final state
    source_text: str = ""
    annotations_text: str = ""
    path: str | None = None
    annotations_path: str | None = None
    version: int | None = None
    model_id: int | None = None  # global id in model_versions (cache key)
    warnings: list[str] = field(default_factory=list)

    @property
    def fingerprint(self) -> str:
        """Content hash of model and annotations: a new version is registered when it changes."""
        h = hashlib.sha256()
        for part in (self.kind, self.source_text, self.annotations_text):
            h.update(part.encode("utf-8"))
            h.update(b"\x1f")
        return h.hexdigest()

    @property
    def labels(self) -> set[str]:
        """Names of the visible transitions (the model tasks)."""
        return {t.label for t in self.net.transitions if t.label is not None}

    def task_for(self, activity: str) -> str | None:
        """Model task an event of ``activity`` counts as; None when the activity is ignored."""
        if activity in self.ignored or is_action_activity(activity):
            return None
        return self.activity_map.get(activity, activity)

    def owner(self, step: str | None) -> str | None:
        if step is None:
            return None
        s = self.steps.get(step)
        return s.owner if s else None

    def step(self, name: str) -> Step:
        if name not in self.steps:
            self.steps[name] = Step(name)
        return self.steps[name]

    def is_allowed(self, dev_type: str, step: str | None) -> bool:
        return any(a.matches(dev_type, step) for a in self.allowlist)

    def describe(self) -> dict[str, Any]:
        """Summary for ``processlens model list`` / validate."""
        return {
            "name": self.name,
            "kind": self.kind,
            "version": self.version,
            "path": self.path,
            "annotations": self.annotations_path,
            "fingerprint": self.fingerprint[:12],
            "tasks": sorted(self.labels),
            "places": len(self.net.places),
            "transitions": len(self.net.transitions),
            "final_steps": sorted(self.final_steps),
            "exceptions": dict(sorted(self.exceptions.items())),
            "owners": {s.name: s.owner for s in sorted(self.steps.values(), key=lambda s: s.name) if s.owner},
            "slas": {s.name: {"seconds": s.sla_seconds, "working_time": s.sla_working}
                     for s in sorted(self.steps.values(), key=lambda s: s.name) if s.sla_seconds},
            "ignored_activities": sorted(self.ignored),
            "allowlist": [{"type": a.type, "step": a.step} for a in self.allowlist],
        }


def parse_duration(text: str | int | float, where: dict[str, Any] | None = None) -> float:
    """Seconds in "2d", "36h", "90m", "1d 4h", "2 days", or ISO 8601 "P2D" / "PT36H"."""
    import re

    from processlens.errors import ModelError

    if isinstance(text, int | float):
        return float(text)
    s = text.strip()
    iso = re.fullmatch(r"P(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?",
                       s.upper())
    if iso and s.upper() != "P" and any(iso.groups()):
        w, d, h, m, sec = (float(g) if g else 0.0 for g in iso.groups())
        return w * 604800 + d * 86400 + h * 3600 + m * 60 + sec
    units = {"w": 604800, "week": 604800, "weeks": 604800, "d": 86400, "day": 86400, "days": 86400,
             "h": 3600, "hour": 3600, "hours": 3600, "m": 60, "min": 60, "mins": 60, "minute": 60,
             "minutes": 60, "s": 1, "sec": 1, "second": 1, "seconds": 1}
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-zA-Z]+)", s)
    rest = re.sub(r"(\d+(?:\.\d+)?)\s*([a-zA-Z]+)", "", s).strip()
    if not parts or rest or any(u.lower() not in units for _, u in parts):
        raise ModelError(f"cannot read the duration {text!r}", where=where or {},
                         hint='write it like "2d", "36h", "1d 4h", "90m" or ISO 8601 "P2D"')
    return sum(float(n) * units[u.lower()] for n, u in parts)


def humanize_seconds(seconds: float | None) -> str:
    """"9 days", "5 hours", "40 minutes"."""
    if seconds is None:
        return "-"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds / size
            n_text = f"{n:.0f}" if n >= 10 or abs(n - round(n)) < 0.05 else f"{n:.1f}"
            return f"{n_text} {unit}{'' if n_text == '1' else 's'}"
    return f"{seconds:.0f} seconds"

"""One composable filter description, pushed into SQL, shared by the CLI, the dashboard and the API.

A :class:`Filter` is applied in two stages (see docs/analytics.md, "Filters"):

1. **event level** — keep only some events: ``sources``, ``activities_keep``, ``event_attributes`` with
   ``event_attribute_mode="events"``, and ``time_mode="trim"`` (cut events to the window).
2. **case level** — keep whole cases, judged on the events left by stage 1: time range
   (contained / intersecting / started / completed), case and event attribute values, activities
   present or absent, directly-follows relations, start and end activity, case duration range,
   case ids; finally variants (top k, or the most frequent ones covering a share of the cases).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from processlens.errors import ProcesslensError

TIME_MODES = ("intersecting", "contained", "started", "completed", "trim")
EVENT_COLUMNS = {"resource": "resource", "lifecycle": "lifecycle"}


class FilterError(ProcesslensError):
    """A filter value cannot be understood."""


def lit(value: Any) -> str:
    """A SQL literal for a string, number or timestamp."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime):
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    return "'" + str(value).replace("'", "''") + "'"


def lits(values: list[Any]) -> str:
    return ", ".join(lit(v) for v in values)


def _parse_ts(value: str | None, name: str) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        ts = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise FilterError(f"filter {name}={value!r} is not a date/time",
                          hint="use ISO 8601, e.g. 2025-03-01 or 2025-03-01T12:00:00Z", where={"field": name}) from exc
    if ts.tzinfo is not None:
        from datetime import UTC

        ts = ts.astimezone(UTC).replace(tzinfo=None)
    return ts


@dataclass
class Filter:
    """What part of the log to analyse. Empty fields filter nothing; all given fields must hold."""

    time_from: str | None = None
    time_to: str | None = None
    time_mode: str = "intersecting"
    case_ids: list[str] = field(default_factory=list)
    case_attributes: dict[str, list[str]] = field(default_factory=dict)
    event_attributes: dict[str, list[str]] = field(default_factory=dict)
    event_attribute_mode: str = "cases"  # "cases": keep cases with such an event; "events": keep those events
    activities_present: list[str] = field(default_factory=list)  # every one of them occurs in the case
    activities_absent: list[str] = field(default_factory=list)  # none of them occurs in the case
    follows: list[list[str]] = field(default_factory=list)  # [a, b]: b directly follows a somewhere in the case
    start_activities: list[str] = field(default_factory=list)
    end_activities: list[str] = field(default_factory=list)
    duration_min_seconds: float | None = None
    duration_max_seconds: float | None = None
    sources: list[str] = field(default_factory=list)  # keep events of these source systems
    activities_keep: list[str] = field(default_factory=list)  # keep only events of these activities (projection)
    variants_top: int | None = None
    variants_coverage: float | None = None  # 0 < x <= 1: most frequent variants covering this share of cases
    variant_ids: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.time_mode not in TIME_MODES:
            raise FilterError(f"unknown time mode {self.time_mode!r}", hint=f"use one of {', '.join(TIME_MODES)}",
                              where={"field": "time_mode"})
        if self.event_attribute_mode not in ("cases", "events"):
            raise FilterError(f"unknown event attribute mode {self.event_attribute_mode!r}", hint="use cases or events",
                              where={"field": "event_attribute_mode"})
        self._from = _parse_ts(self.time_from, "time_from")
        self._to = _parse_ts(self.time_to, "time_to")
        if self.variants_coverage is not None and not 0 < float(self.variants_coverage) <= 1:
            raise FilterError(f"variants coverage {self.variants_coverage} is not in (0, 1]",
                              hint="give a share such as 0.8 for 80 % of the cases", where={"field": "variants_coverage"})
        if self.variants_top is not None and int(self.variants_top) < 1:
            raise FilterError("variants top must be at least 1", where={"field": "variants_top"})
        for pair in self.follows:
            if len(pair) != 2:
                raise FilterError(f"directly-follows filter {pair!r} needs two activities",
                                  hint="write it as 'A>B'", where={"field": "follows"})

    # -- what kind of filter ----------------------------------------------------------------
    @property
    def is_empty(self) -> bool:
        return self == Filter()

    @property
    def has_event_level(self) -> bool:
        """True when events are dropped (not only whole cases): aggregates must be recomputed."""
        return bool(self.sources) or bool(self.activities_keep) or self.time_mode == "trim" and (self._from or self._to) is not None or (
            bool(self.event_attributes) and self.event_attribute_mode == "events"
        )

    # -- serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Only the fields that differ from the defaults."""
        default = Filter()
        return {k: v for k, v in asdict(self).items() if v != getattr(default, k)}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Filter:
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise FilterError(f"unknown filter field(s) {sorted(unknown)}", hint=f"valid fields: {sorted(known)}")
        return cls(**data)

    def to_query_params(self) -> dict[str, str]:
        """Flat ``str -> str`` pairs for a URL (lists joined by '|', pairs as 'A>B', mappings and lists whose
        values contain those separators as JSON)."""
        out: dict[str, str] = {}
        for key, value in self.to_dict().items():
            if isinstance(value, list) and any("|" in str(v) or ">" in str(v) or str(v).startswith("[")
                                               for item in value for v in (item if isinstance(item, list) else [item])):
                out[key] = json.dumps(value, separators=(",", ":"))  # names that clash with the short form
            elif key == "follows":
                out[key] = "|".join(f"{a}>{b}" for a, b in value)
            elif isinstance(value, dict):
                out[key] = json.dumps(value, separators=(",", ":"))
            elif isinstance(value, list):
                out[key] = "|".join(str(v) for v in value)
            else:
                out[key] = str(value)
        return out

    def to_query_string(self) -> str:
        return urlencode(self.to_query_params())

    @classmethod
    def from_query_params(cls, params: dict[str, Any] | str) -> Filter:
        """Inverse of :meth:`to_query_params`; unknown keys (other URL state) are ignored."""
        if isinstance(params, str):
            params = dict(parse_qsl(params.lstrip("?")))
        types = {f.name: f.type for f in fields(cls)}
        data: dict[str, Any] = {}
        for key, raw in params.items():
            if key not in types:
                continue
            if isinstance(raw, list):  # streamlit's query_params.to_dict() may give lists
                raw = raw[-1]
            raw = str(raw)
            kind = str(types[key])
            try:
                if kind.startswith("list") and raw.startswith("["):
                    data[key] = json.loads(raw)
                elif key == "follows":
                    data[key] = [p.split(">", 1) for p in raw.split("|") if p]
                elif kind.startswith("dict"):
                    data[key] = json.loads(raw)
                elif key == "variant_ids":
                    data[key] = [int(v) for v in raw.split("|") if v]
                elif kind.startswith("list"):
                    data[key] = [v for v in raw.split("|") if v != ""]
                elif key == "variants_top":
                    data[key] = int(raw)
                elif key in ("variants_coverage", "duration_min_seconds", "duration_max_seconds"):
                    data[key] = float(raw)
                else:
                    data[key] = raw
            except (ValueError, json.JSONDecodeError) as exc:
                raise FilterError(f"filter parameter {key}={raw!r} is malformed", where={"field": key},
                                  hint="remove it from the URL or fix its value") from exc
        return cls(**data)

    # -- SQL --------------------------------------------------------------------------------
    def event_where(self) -> str:
        """Condition on ``events e`` for stage 1 (``TRUE`` when nothing is dropped)."""
        conds = []
        if self.sources:
            conds.append(f"e.source_id IN (SELECT source_id FROM sources WHERE name IN ({lits(self.sources)}))")
        if self.activities_keep:
            conds.append(f"e.activity_id IN (SELECT activity_id FROM activities WHERE name IN ({lits(self.activities_keep)}))")
        if self.time_mode == "trim":
            if self._from:
                conds.append(f"e.ts >= {lit(self._from)}")
            if self._to:
                conds.append(f"e.ts <= {lit(self._to)}")
        if self.event_attributes and self.event_attribute_mode == "events":
            conds.append(self._event_attr_cond("e"))
        return " AND ".join(conds) or "TRUE"

    def _event_attr_cond(self, alias: str) -> str:
        parts = []
        for name, values in self.event_attributes.items():
            values = values if isinstance(values, list) else [values]
            parts.append(f"{event_attr_expr(alias, name)} IN ({lits([str(v) for v in values])})")
        return " AND ".join(parts)

    @property
    def source_names(self) -> list[str] | None:
        """The source systems of a filter on them alone (cases with an event from one of them), else None."""
        if self.event_attribute_mode != "cases" or len(self.event_attributes) != 1:
            return None
        name, values = next(iter(self.event_attributes.items()))
        if name not in ("source", "source_system"):
            return None
        return [str(v) for v in (values if isinstance(values, list) else [values])]

    def case_where(self, cs: str = "cs0", ev: str = "ev0", ed: str = "ed0", source_mask: int | None = None) -> str:
        """Condition on the case summaries ``cs`` (columns of ``an_cases``) for stage 2, without variants.

        ``source_mask``: the ``source_mask`` bits of :attr:`source_names`, when every one of them has a
        bit; the source condition is then a bit test on ``cs`` instead of a scan of the events."""
        conds = []
        f, t = self._from, self._to
        if self.time_mode != "trim" and (f or t):
            lo, hi = lit(f) if f else None, lit(t) if t else None
            if self.time_mode == "contained":
                conds += [c for c in (lo and f"{cs}.start_ts >= {lo}", hi and f"{cs}.end_ts <= {hi}") if c]
            elif self.time_mode == "intersecting":
                conds += [c for c in (lo and f"{cs}.end_ts >= {lo}", hi and f"{cs}.start_ts <= {hi}") if c]
            elif self.time_mode == "started":
                conds += [c for c in (lo and f"{cs}.start_ts >= {lo}", hi and f"{cs}.start_ts <= {hi}") if c]
            elif self.time_mode == "completed":
                conds += [c for c in (lo and f"{cs}.end_ts >= {lo}", hi and f"{cs}.end_ts <= {hi}") if c]
        if self.case_ids:
            conds.append(f"{cs}.case_key IN (SELECT case_key FROM cases WHERE case_id IN ({lits(self.case_ids)}))")
        for name, values in self.case_attributes.items():
            values = values if isinstance(values, list) else [values]
            expr = "case_id" if name in ("case_id", "case:concept:name") else f"json_extract_string(attrs, {lit(_json_path(name))})"
            conds.append(f"{cs}.case_key IN (SELECT case_key FROM cases WHERE {expr} IN ({lits([str(v) for v in values])}))")
        if self.event_attributes and self.event_attribute_mode == "cases":
            if source_mask is not None and self.source_names is not None:
                conds.append(f"({cs}.source_mask & {int(source_mask)}::UBIGINT) <> 0")
            else:
                conds.append(f"{cs}.case_key IN (SELECT case_key FROM {ev} e WHERE {self._event_attr_cond('e')})")
        for name in self.activities_present:
            conds.append(f"{cs}.case_key IN (SELECT case_key FROM {ev} WHERE activity_id = {activity_id_sql(name)})")
        if self.activities_absent:
            conds.append(f"{cs}.case_key NOT IN (SELECT case_key FROM {ev} WHERE activity_id IN "
                         f"(SELECT activity_id FROM activities WHERE name IN ({lits(self.activities_absent)})))")
        for a, b in self.follows:
            conds.append(f"{cs}.case_key IN (SELECT case_key FROM {ed} WHERE src_id = {activity_id_sql(a)} "
                         f"AND tgt_id = {activity_id_sql(b)})")
        if self.start_activities:
            conds.append(f"{cs}.first_activity_id IN (SELECT activity_id FROM activities WHERE name IN ({lits(self.start_activities)}))")
        if self.end_activities:
            conds.append(f"{cs}.last_activity_id IN (SELECT activity_id FROM activities WHERE name IN ({lits(self.end_activities)}))")
        if self.duration_min_seconds is not None:
            conds.append(f"epoch({cs}.end_ts - {cs}.start_ts) >= {float(self.duration_min_seconds)!r}")
        if self.duration_max_seconds is not None:
            conds.append(f"epoch({cs}.end_ts - {cs}.start_ts) <= {float(self.duration_max_seconds)!r}")
        if self.variant_ids:
            conds.append(f"{cs}.variant_id IN ({lits([int(v) for v in self.variant_ids])})")
        return " AND ".join(conds) or "TRUE"

    @property
    def has_variant_rank(self) -> bool:
        return self.variants_top is not None or self.variants_coverage is not None

    def variant_rank_where(self) -> str:
        """Condition on a relation with ``vrank`` (1 = most frequent) and ``cum_before`` (share of cases before)."""
        conds = []
        if self.variants_top is not None:
            conds.append(f"vrank <= {int(self.variants_top)}")
        if self.variants_coverage is not None:
            conds.append(f"cum_before < {float(self.variants_coverage)!r}")
        return " AND ".join(conds) or "TRUE"


def _json_path(name: str) -> str:
    return '$."' + name.replace('"', '\\"') + '"'


def event_attr_expr(alias: str, name: str) -> str:
    """SQL for an event attribute: a column of ``events`` or a key of its ``attrs`` JSON."""
    if name in EVENT_COLUMNS:
        return f"{alias}.{EVENT_COLUMNS[name]}"
    if name in ("activity", "concept:name"):
        return f"(SELECT name FROM activities a WHERE a.activity_id = {alias}.activity_id)"
    if name in ("source", "source_system"):
        return f"(SELECT name FROM sources s WHERE s.source_id = {alias}.source_id)"
    if name == "org:resource":
        return f"{alias}.resource"
    return f"json_extract_string({alias}.attrs, {lit(_json_path(name))})"


def activity_id_sql(name: str) -> str:
    return f"(SELECT activity_id FROM activities WHERE name = {lit(name)})"

"""The global view filter shared by every page, its URL form and its SQL.

A :class:`ViewFilter` selects cases: those whose span intersects a time range, that touch one of
some source systems, whose case attributes take given values, or that follow one variant. It is
kept in the URL (``?from=2024-01-01&to=...&source=ERP&attr=region%3DNorth&variant=3fa1c2d9e0``)
so a view can be bookmarked and sent to a colleague. Pages hand it to the engines as an
``analytics.Filter`` (:meth:`ViewFilter.to_analytics`) and the store-only queries in
``dashboard.queries`` use :meth:`ViewFilter.cases_sql`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from processlens.errors import ProcesslensError

#: Separator between activities when a variant is hashed into its short id (never in names).
VARIANT_SEP = "\x1f"
VARIANT_ID_LEN = 10


def variant_id_sql(order_by: str) -> str:
    """SQL of a variant's short id: md5 over its activity names (``a.name``) in ``order_by`` order."""
    return f"left(md5(string_agg(a.name, chr(31) ORDER BY {order_by})), {VARIANT_ID_LEN})"


#: SQL expression of a case's variant id over ``events`` (alias e) joined with ``activities`` (alias a).
VARIANT_ID_SQL = variant_id_sql("e.ts, e.event_id")


class FilterError(ProcesslensError):
    """A filter in the URL cannot be read."""


@dataclass(frozen=True)
class ViewFilter:
    """Which cases a page looks at. Empty fields do not filter."""

    start: date | None = None
    end: date | None = None  # inclusive day
    sources: tuple[str, ...] = ()
    attrs: tuple[tuple[str, tuple[str, ...]], ...] = ()
    variant: str | None = None  # short id, see :func:`variant_id`
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    # -- identity --------------------------------------------------------------------------
    @property
    def is_empty(self) -> bool:
        return not (self.start or self.end or self.sources or self.attrs or self.variant)

    def key(self) -> str:
        """A stable string for cache keys."""
        return json.dumps(self.to_query_params(), sort_keys=True)

    def describe(self) -> str:
        """One line for captions: what is filtered."""
        parts = []
        if self.start or self.end:
            parts.append(f"{self.start or '…'} to {self.end or '…'}")
        if self.sources:
            parts.append("source " + ", ".join(self.sources))
        for name, values in self.attrs:
            parts.append(f"{name} = {', '.join(values)}")
        if self.variant:
            parts.append(f"variant {self.variant}")
        return "; ".join(parts) if parts else "all cases"

    # -- URL -------------------------------------------------------------------------------
    def to_query_params(self) -> dict[str, str | list[str]]:
        params: dict[str, str | list[str]] = {}
        if self.start:
            params["from"] = self.start.isoformat()
        if self.end:
            params["to"] = self.end.isoformat()
        if self.sources:
            params["source"] = list(self.sources)
        if self.attrs:
            params["attr"] = [f"{name}={value}" for name, values in self.attrs for value in values]
        if self.variant:
            params["variant"] = self.variant
        return params

    @classmethod
    def from_query_params(cls, params: dict[str, Any]) -> ViewFilter:
        """Read the filter from URL parameters (values may be strings or lists of strings)."""

        def all_of(name: str) -> list[str]:
            value = params.get(name)
            if value is None:
                return []
            return [v for v in (value if isinstance(value, list | tuple) else [value]) if v != ""]

        def day(name: str) -> date | None:
            values = all_of(name)
            if not values:
                return None
            try:
                return date.fromisoformat(values[-1][:10])
            except ValueError as exc:
                raise FilterError(f"the '{name}' date in the link is not a date: {values[-1]!r}",
                                  hint="use YYYY-MM-DD, or clear the filters in the sidebar",
                                  where={"parameter": name}) from exc

        attrs: dict[str, list[str]] = {}
        for item in all_of("attr"):
            name, sep, value = item.partition("=")
            if not sep or not name:
                raise FilterError(f"the attribute filter {item!r} in the link has no '='",
                                  hint="write attr=NAME=VALUE, or clear the filters in the sidebar",
                                  where={"parameter": "attr"})
            attrs.setdefault(name, [])
            if value not in attrs[name]:
                attrs[name].append(value)
        variant = (all_of("variant") or [None])[-1]
        start, end = day("from"), day("to")
        if start and end and end < start:
            start, end = end, start
        return cls(start=start, end=end, sources=tuple(dict.fromkeys(all_of("source"))),
                   attrs=tuple((k, tuple(v)) for k, v in attrs.items()), variant=variant)

    # -- engines ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat() if self.start else None,
            "end": (self.end + timedelta(days=1)).isoformat() if self.end else None,
            "sources": list(self.sources),
            "case_attributes": {name: list(values) for name, values in self.attrs},
            "variant_id": self.variant,
        }

    def to_analytics(self, variant_ids: list[int] | None = None) -> Any:
        """The same selection as an ``analytics.Filter`` (None when analytics is missing or nothing is filtered).

        ``variant_ids`` are analytics' own variant numbers for our short variant id, resolved by
        the caller; without them a variant filter cannot be expressed and is left out.
        """
        if self.is_empty:
            return None
        try:
            from analytics import Filter
        except ImportError:
            return None
        data: dict[str, Any] = {}
        if self.start:
            data["time_from"] = self.start.isoformat()
        if self.end:
            data["time_to"] = (self.end + timedelta(days=1)).isoformat()
        if self.sources:  # cases with an event from these systems (all their events), as on every page
            data["event_attributes"] = {"source": list(self.sources)}
            data["event_attribute_mode"] = "cases"
        if self.attrs:
            data["case_attributes"] = {name: list(values) for name, values in self.attrs}
        if variant_ids:
            data["variant_ids"] = list(variant_ids)
        return Filter.from_dict(data) if hasattr(Filter, "from_dict") else Filter(**data)

    # -- SQL -------------------------------------------------------------------------------
    def with_selection(self, table: str) -> ViewFilter:
        """The same filter, whose selected cases are already in ``table`` (a relation with ``case_key``).

        ``dashboard.data`` computes a filter's case keys once per data version and registers them
        on each query's connection, so that the queries join a small table instead of re-running
        the selection over the events.
        """
        return ViewFilter(start=self.start, end=self.end, sources=self.sources, attrs=self.attrs,
                          variant=self.variant, extra={**self.extra, "selection_table": table})

    def on_summaries(self, source_mask: int | None) -> ViewFilter:
        """The same filter, answered from the fresh case summaries (``source_mask``: the chosen sources' bits).

        Its :meth:`cases_sql` is then a scan of ``an_cases`` (see :meth:`summaries_where`); the
        caller has checked that the aggregates are fresh and that the filter is expressible there.
        """
        return ViewFilter(start=self.start, end=self.end, sources=self.sources, attrs=self.attrs,
                          variant=self.variant, extra={**self.extra, "summaries": True, "source_mask": source_mask})

    def _span_overlaps(self, first: str, last: str) -> tuple[list[str], list[Any]]:
        """Conditions that a case whose events span ``first``..``last`` overlaps the time range (UTC days)."""
        conds: list[str] = []
        params: list[Any] = []
        if self.start:
            conds.append(f"{last} >= ?")
            params.append(self.start)
        if self.end:
            conds.append(f"{first} < ?")
            params.append(self.end + timedelta(days=1))
        return conds, params

    def summaries_where(self, source_mask: int | None = None) -> tuple[str | None, list[Any]]:
        """The filter as a condition on the maintained case summaries ``an_cases c``, with its parameters.

        Time range, source systems (given their ``source_mask`` bits) and variant are columns of
        ``an_cases``, so a query reading it filters by a scan instead of joining the selected keys
        (at 1M cases a join costs about 0.1 s, the scan next to nothing). None when the filter
        has a condition ``an_cases`` cannot answer (case attributes, sources without bits).
        """
        if self.attrs or (self.sources and source_mask is None):
            return None, []
        conds, params = self._span_overlaps("c.start_ts", "c.end_ts")
        if self.sources:
            conds.append("c.source_mask & ?::UBIGINT <> 0")
            params.append(source_mask)
        if self.variant:
            conds.append(f"c.variant_id IN ({_VARIANT_BY_ID})")
            params.append(self.variant)
        return " AND ".join(conds) or "TRUE", params

    def cases_sql(self, aggregates: bool = False, source_mask: int | None = None) -> tuple[str, list[Any]]:
        """``SELECT case_key FROM ...`` of the selected cases, with its parameters.

        With ``aggregates`` the time range and variant conditions read the maintained per-case
        table ``an_cases`` and ``an_variants`` (only when they are fresh) instead of grouping the events;
        with ``source_mask`` too (the bit set of the chosen sources' ids, see ``an_cases.source_mask``),
        so does the source condition.
        """
        table = self.extra.get("selection_table")
        if table:
            return f"SELECT case_key FROM {table}", []
        if self.extra.get("summaries"):
            aggregates, source_mask = True, self.extra.get("source_mask")
        if aggregates:
            pred, pparams = self.summaries_where(source_mask)
            if pred is not None:
                return f"SELECT c.case_key FROM an_cases c WHERE {pred}", pparams
        where: list[str] = []
        params: list[Any] = []
        events_sources = bool(self.sources)
        if aggregates:
            # what the case summaries can answer (all but case attributes, and sources without bits)
            # is one condition on them; the rest below
            has_bits = source_mask is not None
            part = ViewFilter(start=self.start, end=self.end, sources=self.sources if has_bits else (),
                              variant=self.variant)
            if not part.is_empty:
                pred, pparams = part.summaries_where(source_mask)
                where.append(f"c.case_key IN (SELECT c.case_key FROM an_cases c WHERE {pred})")
                params.extend(pparams)
            events_sources = bool(self.sources) and not has_bits
        elif self.start or self.end:
            having, hparams = self._span_overlaps("min(ts)", "max(ts)")
            params.extend(hparams)
            where.append(f"c.case_key IN (SELECT case_key FROM events GROUP BY case_key HAVING {' AND '.join(having)})")
        if events_sources:
            marks = ", ".join("?" for _ in self.sources)
            where.append("c.case_key IN (SELECT DISTINCT case_key FROM events WHERE source_id IN "
                         f"(SELECT source_id FROM sources WHERE name IN ({marks})))")
            params.extend(self.sources)
        for name, values in self.attrs:
            marks = ", ".join("?" for _ in values)
            where.append(f"json_extract_string(c.attrs, ?) IN ({marks})")
            params.append(attr_path(name))
            params.extend(values)
        if self.variant and not aggregates:
            where.append("c.case_key IN (SELECT e.case_key FROM events e JOIN activities a USING (activity_id) "
                         f"GROUP BY e.case_key HAVING {VARIANT_ID_SQL} = ?)")
            params.append(self.variant)
        sql = "SELECT c.case_key FROM cases c" + (" WHERE " + " AND ".join(where) if where else "")
        return sql, params


#: the an_variants ids of the variant whose short id (md5 over the activity names) is the parameter
_VARIANT_BY_ID = ("SELECT s.variant_id FROM (SELECT variant_id, unnest(trace) AS activity_id, "
                  "generate_subscripts(trace, 1) AS pos FROM an_variants) s JOIN activities a USING (activity_id) "
                  f"GROUP BY s.variant_id HAVING {variant_id_sql('s.pos')} = ?")


def attr_path(name: str) -> str:
    """JSON path of a top-level attribute whose name may hold ':' or '.' (XES names do)."""
    return '$."' + name.replace('"', '\\"') + '"'


def variant_id(activities: list[str] | tuple[str, ...]) -> str:
    """The short id of a variant, equal to :data:`VARIANT_ID_SQL` in DuckDB."""
    import hashlib

    return hashlib.md5(VARIANT_SEP.join(activities).encode()).hexdigest()[:VARIANT_ID_LEN]

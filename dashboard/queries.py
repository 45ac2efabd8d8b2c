"""Named, tested queries the dashboard runs against the store.

Each function takes an open DuckDB connection (read-only is enough) and returns a small
DataFrame or dict: only aggregates and bounded lists leave DuckDB. ``dashboard.data`` caches
them by the store's data version; nothing here knows about Streamlit.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from dashboard.filters import VARIANT_ID_LEN, VARIANT_ID_SQL, VARIANT_SEP, ViewFilter, attr_path
from ingest.store import EVENT_ORDER, data_version
from processlens import snapshot


def _df(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
    return con.execute(sql, params or []).df()


def table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether the store has the table ``name`` (a stored table: a relation registered on a cursor does not count)."""
    return snapshot.remember(("dashboard.table_exists", name), lambda: bool(con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ? AND table_catalog <> 'temp'", [name]).fetchone()[0]))


def _scope(flt: ViewFilter | None) -> tuple[str, list[Any]]:
    """A ``WITH fc AS (...)`` clause of the selected cases and a join fragment, or nothing when unfiltered."""
    if flt is None or flt.is_empty:
        return "", []
    sql, params = flt.cases_sql()
    return f"WITH fc AS ({sql}) ", params


def _join(flt: ViewFilter | None, alias: str = "e") -> str:
    return "" if flt is None or flt.is_empty else f" JOIN fc ON fc.case_key = {alias}.case_key"


def _summaries(con: duckdb.DuckDBPyConnection, flt: ViewFilter | None) -> tuple[str, list[Any]]:
    """``WITH sc AS (...)``: the ``an_cases`` rows of the selected cases, and its parameters.

    Time range, sources and variant filter by a condition on ``an_cases`` itself
    (:meth:`ViewFilter.summaries_where`); case attributes join the filter's selected keys.
    """
    if flt is None or flt.is_empty:
        return "WITH sc AS (SELECT * FROM an_cases)", []
    mask = flt.extra["source_mask"] if "source_mask" in flt.extra else (
        _source_mask(con, flt.sources) if flt.sources else None)
    pred, params = flt.summaries_where(mask)
    if pred is not None:
        return f"WITH sc AS (SELECT * FROM an_cases c WHERE {pred})", params
    with_, params = _scope(flt)
    return with_ + ", sc AS (SELECT c.* FROM an_cases c JOIN fc ON fc.case_key = c.case_key)", params


# -- the store as a whole -------------------------------------------------------------------
def overview(con: duckdb.DuckDBPyConnection, flt: ViewFilter | None = None) -> dict[str, Any]:
    """Counts and time span of the (filtered) store."""
    if _fresh_aggregates(con) and _all_sources_have_bits(con):
        # from the per-case summaries in one pass: events per case, span, the sources' bits, the
        # variants (whose activities are known per variant)
        with_, params = _summaries(con, flt)
        events, cases, variants, sources, first, last = con.execute(with_ + """
            SELECT coalesce(sum(n_events), 0)::BIGINT, count(*), list(DISTINCT variant_id),
                   coalesce(bit_count(bit_or(source_mask)), 0), min(start_ts), max(end_ts)
            FROM sc""", params).fetchone()
        activities = _variant_activities(con)
        row = (events, cases, len(set().union(*(activities.get(v, ()) for v in variants or ()))), sources, first, last)
    else:
        with_, params = _scope(flt)
        row = con.execute(
            with_ + "SELECT count(*), count(DISTINCT e.case_key), count(DISTINCT e.activity_id), "
            "count(DISTINCT e.source_id), min(e.ts), max(e.ts) FROM events e" + _join(flt), params
        ).fetchone()
    return {
        "events": row[0], "cases": row[1], "activities": row[2], "sources": row[3],
        "first_ts": row[4], "last_ts": row[5], "data_version": data_version(con),
    }


def _variant_activities(con: duckdb.DuckDBPyConnection) -> dict[int, frozenset[int]]:
    """The activity ids of each maintained variant (read once per handle)."""
    return snapshot.remember("dashboard.variant_activities", lambda: {
        int(v): frozenset(t) for v, t in con.execute("SELECT variant_id, list_distinct(trace) FROM an_variants").fetchall()})


def _all_sources_have_bits(con: duckdb.DuckDBPyConnection) -> bool:
    """True when every source id has its bit in ``an_cases.source_mask`` (ids below 64, column present)."""
    from analytics.plan import summaries_have_source_bits
    from analytics.queries import SOURCE_MASK_BITS

    return snapshot.remember("dashboard.all_sources_have_bits", lambda: summaries_have_source_bits(con) and (
        con.execute("SELECT coalesce(max(source_id), 0) FROM sources").fetchone()[0] < SOURCE_MASK_BITS))


def time_bounds(con: duckdb.DuckDBPyConnection) -> tuple[datetime | None, datetime | None]:
    return tuple(con.execute("SELECT min(ts), max(ts) FROM events").fetchone())  # type: ignore[return-value]


def source_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in con.execute("SELECT name FROM sources ORDER BY name").fetchall()]


def activity_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in con.execute("SELECT name FROM activities ORDER BY name").fetchall()]


def case_attribute_names(con: duckdb.DuckDBPyConnection, max_values: int = 60, sample: int = 20000) -> pd.DataFrame:
    """Case attributes usable as filters: name, distinct values (in a sample), cases having it."""
    return _df(
        con,
        f"""
        WITH s AS (SELECT attrs FROM cases WHERE attrs IS NOT NULL LIMIT {int(sample)}),
        kv AS (SELECT k AS name, json_extract_string(attrs, '$."' || replace(k, '"', '\\"') || '"') AS value
               FROM s, unnest(json_keys(attrs)) AS t(k))
        SELECT name, count(DISTINCT value) AS distinct_values, count(value) AS cases
        FROM kv GROUP BY name
        HAVING count(DISTINCT value) BETWEEN 1 AND {int(max_values)}
        ORDER BY name
        """,
    )


def case_attribute_values(con: duckdb.DuckDBPyConnection, name: str, limit: int = 200) -> list[str]:
    rows = con.execute(
        "SELECT v FROM (SELECT json_extract_string(attrs, ?) AS v FROM cases) WHERE v IS NOT NULL "
        "GROUP BY v ORDER BY count(*) DESC, v LIMIT ?",
        [attr_path(name), limit],
    ).fetchall()
    return [r[0] for r in rows]


# -- Data page ------------------------------------------------------------------------------
def sources_table(con: duckdb.DuckDBPyConnection, now: datetime | None = None) -> pd.DataFrame:
    """One row per source system: kind, counts, last event, last ingest and its status, freshness."""
    now = now or datetime.utcnow()
    return _df(
        con,
        """
        WITH ev AS (SELECT source_id, count(*) AS events, count(DISTINCT case_key) AS cases,
                           min(ts) AS first_event, max(ts) AS last_event FROM events GROUP BY source_id),
        runs AS (SELECT source_id, max(ended_at) FILTER (WHERE status = 'succeeded') AS last_ingest,
                        arg_max(status, started_at) AS last_status, arg_max(error, started_at) AS last_error,
                        count(*) AS runs, sum(rows_rejected) AS rejected
                 FROM ingest_runs GROUP BY source_id)
        SELECT s.name AS source, s.kind, s.timezone, coalesce(ev.events, 0) AS events,
               coalesce(ev.cases, 0) AS cases, ev.first_event, ev.last_event, runs.last_ingest,
               runs.last_status, runs.last_error, coalesce(runs.runs, 0) AS runs,
               coalesce(runs.rejected, 0) AS rejected,
               (epoch(?::TIMESTAMP) - epoch(runs.last_ingest)) / 3600.0 AS hours_since_ingest,
               (epoch(?::TIMESTAMP) - epoch(ev.last_event)) / 3600.0 AS hours_since_last_event
        FROM sources s LEFT JOIN ev USING (source_id) LEFT JOIN runs USING (source_id)
        ORDER BY s.name
        """,
        [now, now],
    )


def ingest_runs(con: duckdb.DuckDBPyConnection, limit: int = 200) -> pd.DataFrame:
    return _df(
        con,
        """
        SELECT r.run_id, r.job, s.name AS source, r.status, r.started_at, r.ended_at,
               date_diff('millisecond', r.started_at, r.ended_at) / 1000.0 AS seconds,
               r.rows_read, r.rows_loaded, r.rows_rejected, r.duplicates_skipped, r.error
        FROM ingest_runs r LEFT JOIN sources s USING (source_id)
        ORDER BY r.started_at DESC, r.run_id DESC LIMIT ?
        """,
        [limit],
    )


def reject_summary(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Rejected records grouped by source, field and reason, most frequent first."""
    return _df(
        con,
        """
        SELECT coalesce(s.name, '?') AS source, r.field, r.reason, count(*) AS records,
               min(r.location) AS example_location, min(r.line) AS first_line, max(r.rejected_at) AS last_seen
        FROM rejects r LEFT JOIN sources s USING (source_id)
        GROUP BY ALL ORDER BY records DESC, source LIMIT 200
        """,
    )


def rejects(con: duckdb.DuckDBPyConnection, limit: int = 500) -> pd.DataFrame:
    return _df(
        con,
        """
        SELECT r.run_id, coalesce(s.name, '?') AS source, r.location, r.line, r.record_key, r.field, r.reason,
               CAST(r.raw AS VARCHAR) AS raw, r.rejected_at
        FROM rejects r LEFT JOIN sources s USING (source_id)
        ORDER BY r.rejected_at DESC, r.run_id DESC, r.line LIMIT ?
        """,
        [limit],
    )


def pending_correlation(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Records waiting for a correlation key to name their case, per source and key."""
    return _df(
        con,
        """
        SELECT s.name AS source, p.key_name, count(*) AS records, min(p.ts) AS oldest, max(p.ts) AS newest
        FROM pending_events p LEFT JOIN sources s USING (source_id)
        GROUP BY ALL ORDER BY records DESC
        """,
    )


def models_in_store(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Reference models registered in the store (the models part's table), newest first; empty when none."""
    for name in ("models", "model_versions", "reference_models"):
        if table_exists(con, name):
            df = _df(con, f"SELECT * FROM {name}")
            keep = [c for c in df.columns if not any(x in c.lower() for x in ("xml", "body", "definition", "pnml", "json"))]
            df = df[keep]
            order = [c for c in ("registered_at", "created_at", "version") if c in df.columns]
            return df.sort_values(order[0], ascending=False) if order else df
    return pd.DataFrame()


# -- cases ----------------------------------------------------------------------------------
def case_attribute(con: duckdb.DuckDBPyConnection, name: str) -> pd.DataFrame:
    """Every case's value of one case attribute (``(missing)`` when absent): columns case_id, value."""
    return _df(con, "SELECT case_id::VARCHAR AS case_id, coalesce(json_extract_string(attrs, ?), '(missing)') AS value "
                    "FROM cases", [attr_path(name)])


def find_cases(con: duckdb.DuckDBPyConnection, text: str = "", limit: int = 50) -> list[str]:
    """Case ids containing ``text`` (case-insensitive); exact matches first."""
    rows = con.execute(
        "SELECT case_id FROM cases WHERE case_id ILIKE ? ORDER BY case_id <> ?, length(case_id), case_id LIMIT ?",
        [f"%{text}%", text, limit],
    ).fetchall()
    return [r[0] for r in rows]


def case_summary(con: duckdb.DuckDBPyConnection, case_id: str) -> dict[str, Any] | None:
    """Attributes and span of one case, or None when the store has no such case."""
    row = con.execute("SELECT case_key, attrs FROM cases WHERE case_id = ?", [case_id]).fetchone()
    if row is None:
        return None
    key, attrs = row
    stats = con.execute(
        """SELECT count(*), min(e.ts), max(e.ts), list(DISTINCT s.name ORDER BY s.name),
                  arg_max(a.name, (e.ts, e.event_id)), count(DISTINCT e.resource)
           FROM events e JOIN sources s USING (source_id) JOIN activities a USING (activity_id)
           WHERE e.case_key = ?""",
        [key],
    ).fetchone()
    return {
        "case_id": case_id, "case_key": key, "attrs": json.loads(attrs) if attrs else {},
        "events": stats[0], "first_ts": stats[1], "last_ts": stats[2], "sources": list(stats[3] or []),
        "last_activity": stats[4], "resources": stats[5],
        "duration_seconds": (stats[2] - stats[1]).total_seconds() if stats[1] else None,
    }


def case_events(con: duckdb.DuckDBPyConnection, case_id: str, limit: int = 5000) -> pd.DataFrame:
    """The events of one case in the canonical order, with the wait since the previous event."""
    df = _df(
        con,
        f"""
        SELECT e.event_id, e.ts, e.start_ts, a.name AS activity, e.lifecycle, e.resource, s.name AS source,
               e.record_id, CAST(e.attrs AS VARCHAR) AS attrs,
               (epoch(e.ts) - epoch(lag(e.ts) OVER (ORDER BY {EVENT_ORDER}))) AS wait_seconds
        FROM events e JOIN activities a USING (activity_id) JOIN sources s USING (source_id)
        WHERE e.case_key = (SELECT case_key FROM cases WHERE case_id = ?)
        ORDER BY {EVENT_ORDER} LIMIT ?
        """,
        [case_id, limit],
    )
    return df


def recent_cases(con: duckdb.DuckDBPyConnection, flt: ViewFilter | None = None, limit: int = 200) -> pd.DataFrame:
    """The cases with the most recent activity (for pickers): id, last activity and time, events."""
    with_, params = _scope(flt)
    return _df(
        con,
        with_ + f"""
        SELECT c.case_id, arg_max(a.name, (e.ts, e.event_id)) AS last_activity, max(e.ts) AS last_ts,
               min(e.ts) AS first_ts, count(*) AS events
        FROM events e JOIN cases c USING (case_key) JOIN activities a USING (activity_id){_join(flt)}
        GROUP BY c.case_id ORDER BY last_ts DESC, c.case_id LIMIT {int(limit)}
        """,
        params,
    )


# -- variants -------------------------------------------------------------------------------
def top_variants(con: duckdb.DuckDBPyConnection, flt: ViewFilter | None = None, top: int = 25,
                 times: bool = True) -> pd.DataFrame:
    """The most frequent variants: short id, activities, cases, share of cases, median and p90 throughput (s).

    ``times=False`` leaves the throughput columns empty (NULL): the filter bar's list needs only the
    counts, and the two quantiles over every selected case are most of the query's cost.
    """
    # the list offers other variants too: every filter but the variant one (the same filter when it has none)
    flt_wo_variant = (ViewFilter(start=flt.start, end=flt.end, sources=flt.sources, attrs=flt.attrs)
                      if flt is not None and flt.variant else flt)
    if _fresh_aggregates(con):
        # per-case variants and spans from the maintained aggregates: no scan of the events
        with_, params = _summaries(con, flt_wo_variant)
        df = _df(con, with_ + f""",
        v AS (SELECT c.variant_id AS an_id, count(*) AS cases, {_quantiles("epoch(c.end_ts) - epoch(c.start_ts)", times)}
              FROM sc c GROUP BY 1),
        steps AS (SELECT variant_id AS an_id, unnest(trace) AS activity_id, generate_subscripts(trace, 1) AS pos
                  FROM an_variants WHERE variant_id IN (SELECT an_id FROM v)),
        seqs AS (SELECT an_id, string_agg(a.name, chr(31) ORDER BY pos) AS seq
                 FROM steps JOIN activities a USING (activity_id) GROUP BY an_id)
        SELECT left(md5(seq), {VARIANT_ID_LEN}) AS variant_id, seq, cases, cases / sum(cases) OVER () AS share,
               median_seconds, p90_seconds
        FROM v JOIN seqs USING (an_id) ORDER BY cases DESC, variant_id LIMIT {int(top)}""", params)
        df["activities"] = df.pop("seq").map(lambda s: s.split(VARIANT_SEP) if s else [])
        df["length"] = df["activities"].map(len)
        return df
    with_, params = _scope(flt_wo_variant)
    with_ = with_ + ", " if with_ else "WITH "
    df = _df(
        con,
        with_ + f"""
        pc AS (SELECT e.case_key, {VARIANT_ID_SQL} AS variant_id,
                      string_agg(a.name, chr(31) ORDER BY e.ts, e.event_id) AS seq,
                      (epoch(max(e.ts)) - epoch(min(e.ts))) AS seconds
               FROM events e JOIN activities a USING (activity_id){_join(flt_wo_variant)} GROUP BY e.case_key)
        SELECT variant_id, any_value(seq) AS seq, count(*) AS cases, count(*) / sum(count(*)) OVER () AS share,
               {_quantiles("seconds", times)}
        FROM pc GROUP BY variant_id ORDER BY cases DESC, variant_id LIMIT {int(top)}
        """,
        params,
    )
    df["activities"] = df.pop("seq").map(lambda s: s.split(VARIANT_SEP) if s else [])
    df["length"] = df["activities"].map(len)
    return df


def _quantiles(seconds: str, times: bool) -> str:
    if not times:
        return "CAST(NULL AS DOUBLE) AS median_seconds, CAST(NULL AS DOUBLE) AS p90_seconds"
    return f"median({seconds}) AS median_seconds, quantile_cont({seconds}, 0.9) AS p90_seconds"


def variant_activities(con: duckdb.DuckDBPyConnection, vid: str) -> list[str] | None:
    """The activity sequence of a variant given its short id, or None when no case follows it."""
    row = con.execute(
        f"""SELECT seq FROM (SELECT {VARIANT_ID_SQL} AS variant_id,
                                    string_agg(a.name, chr(31) ORDER BY e.ts, e.event_id) AS seq
                             FROM events e JOIN activities a USING (activity_id) GROUP BY e.case_key)
            WHERE variant_id = ? LIMIT 1""",
        [vid],
    ).fetchone()
    return row[0].split(VARIANT_SEP) if row else None


# -- flow over time (store-only) ------------------------------------------------------------
def weekly_flow(con: duckdb.DuckDBPyConnection, flt: ViewFilter | None = None, freq: str = "week") -> pd.DataFrame:
    """Cases started and ended (last event) per period, and events per period."""
    if freq not in ("day", "week", "month"):
        raise ValueError(f"freq must be day, week or month, not {freq!r}")
    if _fresh_aggregates(con):
        with_, params = _summaries(con, flt)
        with_ += ", "
        pc = "pc AS (SELECT c.case_key, c.start_ts AS first_ts, c.end_ts AS last_ts FROM sc c)"
    else:
        with_, params = _scope(flt)
        with_ = with_ + ", " if with_ else "WITH "
        pc = f"pc AS (SELECT e.case_key, min(e.ts) AS first_ts, max(e.ts) AS last_ts FROM events e{_join(flt)} GROUP BY e.case_key)"
    return _df(
        con,
        with_ + pc + f""",
        started AS (SELECT date_trunc('{freq}', first_ts) AS period, count(*) AS started FROM pc GROUP BY 1),
        ended AS (SELECT date_trunc('{freq}', last_ts) AS period, count(*) AS last_activity FROM pc GROUP BY 1)
        SELECT period, coalesce(started, 0) AS started, coalesce(last_activity, 0) AS last_activity
        FROM started FULL JOIN ended USING (period) ORDER BY period
        """,
        params,
    )


def handoff_waits(con: duckdb.DuckDBPyConnection, flt: ViewFilter | None = None, top: int = 30) -> pd.DataFrame:
    """Waiting time between consecutive events per hand-off (activity → activity, source → source)."""
    with_, params = _scope(flt)
    with_ = with_ + ", " if with_ else "WITH "
    return _df(
        con,
        with_ + f"""
        seq AS (SELECT a.name AS target, s.name AS target_source,
                       lag(a.name) OVER w AS source, lag(s.name) OVER w AS source_system,
                       (epoch(e.ts) - epoch(lag(e.ts) OVER w)) AS wait
                FROM events e JOIN activities a USING (activity_id) JOIN sources s USING (source_id){_join(flt)}
                WINDOW w AS (PARTITION BY e.case_key ORDER BY e.ts, e.event_id))
        SELECT source, target, source_system, target_source AS target_system, count(*) AS frequency,
               sum(wait) AS total_wait_seconds, median(wait) AS median_seconds, quantile_cont(wait, 0.9) AS p90_seconds,
               sum(wait) / sum(sum(wait)) OVER () AS share_of_waiting
        FROM seq WHERE source IS NOT NULL GROUP BY ALL ORDER BY total_wait_seconds DESC LIMIT {int(top)}
        """,
        params,
    )


#: the Bottlenecks page's tables, one per tab
BOTTLENECK_PARTS = ("handoffs", "weeks", "resources")


def bottleneck_waits(con: duckdb.DuckDBPyConnection, flt: ViewFilter | None = None, handoff_top: int = 30,
                     activity_top: int = 15, resource_top: int = 30,
                     parts: Sequence[str] = BOTTLENECK_PARTS) -> dict[str, pd.DataFrame]:
    """The Bottlenecks page's tables (``parts`` of :data:`BOTTLENECK_PARTS`) in one session and one
    pass over the events: the same results as ``handoff_waits``, ``wait_by_activity_week`` and
    ``wait_by_resource``.

    With fresh aggregates they are grouped from the maintained directly-follows pairs
    (:func:`_bottleneck_waits_from_edges`). Otherwise the waits between consecutive events are
    computed once into a temporary table, then grouped. The page asks for the open tab's part only:
    each part costs a pass of exact quantiles over every wait.
    """
    unknown = set(parts) - set(BOTTLENECK_PARTS)
    if unknown or not parts:
        raise ValueError(f"parts must be some of {BOTTLENECK_PARTS}, not {list(parts)}")
    if _fresh_aggregates(con):
        return _bottleneck_waits_from_edges(con, flt, handoff_top, activity_top, resource_top, parts)
    with_, params = _scope(flt)
    with_ = with_ + ", " if with_ else "WITH "
    con.execute("DROP TABLE IF EXISTS temp.pl_waits")
    con.execute("CREATE TEMP TABLE pl_waits AS " + with_ + f"""
        seq AS (SELECT a.name AS target, s.name AS target_source, e.resource, e.ts,
                       lag(a.name) OVER w AS source, lag(s.name) OVER w AS source_system,
                       (epoch(e.ts) - epoch(lag(e.ts) OVER w)) AS wait
                FROM events e JOIN activities a USING (activity_id) JOIN sources s USING (source_id){_join(flt)}
                WINDOW w AS (PARTITION BY e.case_key ORDER BY e.ts, e.event_id))
        SELECT * FROM seq WHERE source IS NOT NULL""", params)
    queries = {
        "handoffs": f"""
            SELECT source, target, source_system, target_source AS target_system, count(*) AS frequency,
                   sum(wait) AS total_wait_seconds, median(wait) AS median_seconds,
                   quantile_cont(wait, 0.9) AS p90_seconds, sum(wait) / sum(sum(wait)) OVER () AS share_of_waiting
            FROM pl_waits GROUP BY ALL ORDER BY total_wait_seconds DESC LIMIT {int(handoff_top)}""",
        "weeks": f"""
            WITH w AS (SELECT target AS activity, ts, wait FROM pl_waits WHERE wait IS NOT NULL),
            topa AS (SELECT activity FROM w GROUP BY activity ORDER BY sum(wait) DESC LIMIT {int(activity_top)})
            SELECT date_trunc('week', ts) AS week, activity, count(*) AS events, median(wait) AS median_seconds
            FROM w WHERE activity IN (SELECT activity FROM topa) GROUP BY ALL ORDER BY week, activity""",
        "resources": f"""
            SELECT coalesce(resource, '(none)') AS resource, count(*) AS events, sum(wait) AS total_wait_seconds,
                   median(wait) AS median_seconds, sum(wait) / sum(sum(wait)) OVER () AS share_of_waiting
            FROM pl_waits WHERE wait IS NOT NULL GROUP BY 1 ORDER BY total_wait_seconds DESC LIMIT {int(resource_top)}""",
    }
    try:
        return {part: _df(con, queries[part]) for part in BOTTLENECK_PARTS if part in parts}
    finally:
        con.execute("DROP TABLE IF EXISTS temp.pl_waits")


#: each part's grouping set, and a column grouped in that set only (which tells its rows apart)
_PART_SETS = {"handoffs": (("src_id", "tgt_id", "src_source_id", "tgt_source_id"), "src_id"),
              "weeks": (("week", "tgt_id"), "week"),
              "resources": (("tgt_resource",), "tgt_resource")}


def _bottleneck_groups(con: duckdb.DuckDBPyConnection, flt: ViewFilter | None, wanted: list[str]) -> pd.DataFrame:
    """One scan of the selected cases' pairs grouped by each wanted part's grouping set: the part
    (``kind``), its keys, ``n``, ``total`` and ``q`` ([median, p90]) per group."""
    with_, params = _scope(flt)
    with_ = with_ + ", " if with_ else "WITH "
    if flt is None or flt.is_empty:
        keep = ""
    else:
        # the selected cases as a bit string indexed by case_key: testing a bit per pair is several
        # times faster than joining millions of pairs with a million selected keys
        from analytics.plan import top_case_key

        top = top_case_key(con)
        with_ += f"sel AS (SELECT bitstring_agg(case_key, 0, {top}) AS bits FROM fc), "
        keep = ", sel WHERE get_bit(sel.bits, d.case_key) = 1"
    sets = ", ".join(f"({', '.join(_PART_SETS[p][0])})" for p in wanted)
    grouped = {c for p in wanted for c in _PART_SETS[p][0]}
    keys = ", ".join(c if c in grouped else f"NULL AS {c}"
                     for c in ("src_id", "tgt_id", "src_source_id", "tgt_source_id", "week", "tgt_resource"))
    # which part a row belongs to (GROUPING may only name columns that some set groups by)
    kind = (f"'{wanted[0]}'" if len(wanted) == 1 else
            "CASE " + " ".join(f"WHEN GROUPING({_PART_SETS[p][1]}) = 0 THEN '{p}'" for p in wanted[:-1])
            + f" ELSE '{wanted[-1]}' END")
    return _df(con, with_ + f"""
        w AS (SELECT d.src_id, d.tgt_id, d.src_source_id, d.tgt_source_id, d.tgt_resource,
                     date_trunc('week', d.tgt_ts) AS week, epoch(d.tgt_ts) - epoch(d.src_ts) AS wait
              FROM an_edges d{keep})
        SELECT {kind} AS kind, {keys}, count(*) AS n, sum(wait) AS total, quantile_cont(wait, [0.5, 0.9]) AS q
        FROM w GROUP BY GROUPING SETS ({sets})
        """, params)


def _bottleneck_waits_from_edges(con: duckdb.DuckDBPyConnection, flt: ViewFilter | None, handoff_top: int,
                                 activity_top: int, resource_top: int,
                                 parts: Sequence[str] = BOTTLENECK_PARTS) -> dict[str, pd.DataFrame]:
    """:func:`bottleneck_waits` from the maintained directly-follows pairs (``an_edges``): each pair is
    one event and its predecessor in the case, so the waits are the same without a window over the
    events. One scan groups the pairs by each part's grouping set at once (hand-off; activity and
    week; resource); shares, the top rows and the names are then taken from the few groups. Under a
    filter, once the dashboard has built the parts' pair indexes (:mod:`analytics.pair_index`), the
    groups come from memory instead: the same numbers, without a pass of quantiles over the pairs."""
    from analytics import pair_index  # fresh aggregates come with the analytics engine

    wanted = [p for p in BOTTLENECK_PARTS if p in parts]
    filtered = flt is not None and not flt.is_empty
    indexes = {p: pair_index.lookup(con, p) for p in wanted} if filtered else {}
    if filtered and all(index is not None for index in indexes.values()):
        # the selected cases' pairs from the in-memory indexes the dashboard built (same numbers)
        selected = pair_index.selection_mask(selected_case_keys(con, flt))
        part_groups = {}
        for p in wanted:
            got = indexes[p].stats(selected, cases=False)
            part_groups[p] = got.rename(columns={"frequency": "n", "total_seconds": "total"}).assign(
                q=list(zip(got["q0.5"], got["q0.9"], strict=True)))
    else:
        groups = _bottleneck_groups(con, flt, wanted)
        part_groups = {p: groups[groups["kind"] == p] for p in wanted}
    activity = dict(con.execute("SELECT activity_id, name FROM activities").fetchall())
    system = dict(con.execute("SELECT source_id, name FROM sources").fetchall())
    out = {}
    if "handoffs" in parts:
        pairs = part_groups["handoffs"]
        handoffs = pd.DataFrame({
            "source": pairs["src_id"].map(activity), "target": pairs["tgt_id"].map(activity),
            "source_system": pairs["src_source_id"].map(system), "target_system": pairs["tgt_source_id"].map(system),
            "frequency": pairs["n"], "total_wait_seconds": pairs["total"], "median_seconds": [q[0] for q in pairs["q"]],
            "p90_seconds": [q[1] for q in pairs["q"]], "share_of_waiting": pairs["total"] / pairs["total"].sum()})
        out["handoffs"] = handoffs.sort_values(["total_wait_seconds", "source", "target", "source_system", "target_system"],
                                               ascending=[False, True, True, True, True]).head(int(handoff_top))
    if "weeks" in parts:
        weeks = part_groups["weeks"]
        # the activities with the most waiting before them (all their pairs, summed over the weeks), by week
        waited = weeks.groupby("tgt_id")["total"].sum().reset_index().sort_values(["total", "tgt_id"],
                                                                                   ascending=[False, True])
        weeks = weeks[weeks["tgt_id"].isin(set(waited["tgt_id"].head(int(activity_top))))]
        out["weeks"] = pd.DataFrame({"week": weeks["week"], "activity": weeks["tgt_id"].map(activity),
                                     "events": weeks["n"], "median_seconds": [q[0] for q in weeks["q"]]}
                                    ).sort_values(["week", "activity"])
    if "resources" in parts:
        res = part_groups["resources"]
        resources = pd.DataFrame({
            "resource": res["tgt_resource"].fillna("(none)"), "events": res["n"], "total_wait_seconds": res["total"],
            "median_seconds": [q[0] for q in res["q"]], "share_of_waiting": res["total"] / res["total"].sum()})
        out["resources"] = resources.sort_values(["total_wait_seconds", "resource"],
                                                 ascending=[False, True]).head(int(resource_top))
    return {name: frame.reset_index(drop=True) for name, frame in out.items()}


def period_bounds(last_ts: datetime | None, flt: ViewFilter | None, days: int = 28) -> tuple[datetime, datetime]:
    """The period the Health page reports on: the filter's range, or the ``days`` up to the last event."""
    if flt is not None and flt.start and flt.end:
        start = datetime.combine(flt.start, datetime.min.time())
        end = datetime.combine(flt.end, datetime.min.time()) + timedelta(days=1)
        return start, end
    end = (last_ts or datetime.utcnow()).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    if flt is not None and flt.end:
        end = datetime.combine(flt.end, datetime.min.time()) + timedelta(days=1)
    start = datetime.combine(flt.start, datetime.min.time()) if flt is not None and flt.start else end - timedelta(days=days)
    return start, end


# -- directly-follows map (store-only stand-in for analytics.dfg) -----------------------------------
def dfg(con: duckdb.DuckDBPyConnection, flt: ViewFilter | None = None) -> dict[str, pd.DataFrame]:
    """Activities (frequency, cases) and directly-follows edges (frequency, cases, median/mean seconds),
    plus start (``source`` = '▶') and end (``target`` = '■') edges, of the selected cases."""
    with_, params = _scope(flt)
    with_ = with_ + ", " if with_ else "WITH "
    seq = with_ + f"""
        seq AS (SELECT e.case_key, a.name AS activity,
                       lag(a.name) OVER w AS prev, lead(a.name) OVER w AS next,
                       (epoch(e.ts) - epoch(lag(e.ts) OVER w)) AS wait
                FROM events e JOIN activities a USING (activity_id){_join(flt)}
                WINDOW w AS (PARTITION BY e.case_key ORDER BY e.ts, e.event_id))"""
    acts = _df(con, seq + " SELECT activity, count(*) AS frequency, count(DISTINCT case_key) AS cases "
                          "FROM seq GROUP BY activity ORDER BY frequency DESC, activity", params)
    edges = _df(con, seq + """
        SELECT coalesce(prev, '▶') AS source, activity AS target, count(*) AS frequency,
               count(DISTINCT case_key) AS cases, median(wait) AS median_seconds, avg(wait) AS mean_seconds
        FROM seq GROUP BY ALL
        UNION ALL
        SELECT activity, '■', count(*), count(DISTINCT case_key), NULL, NULL FROM seq WHERE next IS NULL GROUP BY ALL
        ORDER BY frequency DESC, source, target""", params)
    return {"activities": acts, "edges": edges}


# -- Health: flow KPIs (store-only) -----------------------------------------------------------------
def _fresh_aggregates(con: duckdb.DuckDBPyConnection) -> bool:
    """True when the analytics package's per-case aggregate (``an_cases``) covers every event."""
    try:
        from analytics.incremental import is_fresh
    except ImportError:
        return False
    return is_fresh(con)


def _case_spans(con: duckdb.DuckDBPyConnection, flt: ViewFilter | None, end_activities: list[str] | None, idle_days: float, now: datetime,
                use_aggregates: bool = False) -> tuple[str, list[Any]]:
    """CTE ``pc``: per case ``case_key``, ``first_ts``, ``last_ts``, the ids of its last event's activity and
    source (``last_activity_id``, ``last_source_id``) and whether it is ``closed``.

    Closed = its last activity is one of ``end_activities``; without them, idle for ``idle_days``.
    With ``use_aggregates`` the spans come from the maintained ``an_cases`` table (one row per
    case, same ``ORDER BY ts, event_id`` tie-break) instead of a scan of every event. The names are
    left to the queries that show them (:func:`_named`): joining them to every case cost more
    than the rest of a Health question at 10M events.
    """
    if use_aggregates:
        with_, params = _summaries(con, flt)
        with_ += ", "
        pc0 = """
        pc0 AS (SELECT c.case_key, c.start_ts AS first_ts, c.end_ts AS last_ts, c.last_activity_id, c.last_source_id
                FROM sc c)"""
    else:
        with_, params = _scope(flt)
        with_ = with_ + ", " if with_ else "WITH "
        pc0 = f"""
        pc0 AS (SELECT e.case_key, min(e.ts) AS first_ts, max(e.ts) AS last_ts,
                       arg_max(e.activity_id, (e.ts, e.event_id)) AS last_activity_id,
                       arg_max(e.source_id, (e.ts, e.event_id)) AS last_source_id
                FROM events e{_join(flt)} GROUP BY e.case_key)"""
    if end_activities:
        known = _activity_id_map(con)
        ids = sorted({known[a] for a in end_activities if a in known})
        closed = f"last_activity_id IN ({', '.join(map(str, ids))})" if ids else "false"
        cparams: list[Any] = []
    else:
        closed = "last_ts < ?::TIMESTAMP - to_days(?::INTEGER)"
        cparams = [now, int(idle_days)]
    sql = with_ + pc0 + f""",
        pc AS (SELECT *, ({closed}) AS closed FROM pc0)"""
    return sql, params + cparams


def _activity_id_map(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Activity name -> id (read once per handle)."""
    return snapshot.remember("dashboard.activity_ids", lambda: dict(
        con.execute("SELECT name, activity_id FROM activities").fetchall()))


#: ``pc``'s id columns and the name each stands for (see :func:`_case_spans`)
_NAMED = {"last_activity": ("last_activity_id", "activities", "activity_id"),
          "last_source": ("last_source_id", "sources", "source_id")}


def _named(column: str, alias: str) -> tuple[str, str]:
    """(expression, join) giving ``alias.<id column>``'s name as ``column`` (``last_activity`` or ``last_source``)."""
    id_col, table, key = _NAMED[column]
    return f"{column}_t.name", f" LEFT JOIN {table} {column}_t ON {column}_t.{key} = {alias}.{id_col}"


def flow_kpis(con: duckdb.DuckDBPyConnection, flt: ViewFilter | None, start: str, end: str,
              end_activities: list[str] | None = None, idle_days: float = 30, now: str | None = None) -> dict[str, Any]:
    """Started, completed, median and p90 throughput (s) in [start, end) and the period before; WIP at the end."""
    t0, t1 = datetime.fromisoformat(start), datetime.fromisoformat(end)
    p0 = t0 - (t1 - t0)
    now_ts = datetime.fromisoformat(now) if now else t1
    cte, params = _case_spans(con, flt, end_activities, idle_days, now_ts, _fresh_aggregates(con))

    # both periods and the open cases in one scan of the case spans
    period = """count(*) FILTER (WHERE first_ts >= ? AND first_ts < ?),
                count(*) FILTER (WHERE closed AND last_ts >= ? AND last_ts < ?),
                median((epoch(last_ts) - epoch(first_ts))) FILTER (WHERE closed AND last_ts >= ? AND last_ts < ?),
                quantile_cont((epoch(last_ts) - epoch(first_ts)), 0.9) FILTER (WHERE closed AND last_ts >= ? AND last_ts < ?),
                count(*) FILTER (WHERE first_ts < ? AND (NOT closed OR last_ts >= ?))"""
    row = con.execute(cte + f"""
        SELECT {period}, {period}, count(*) FILTER (WHERE NOT closed), count(*) FROM pc""",
        params + [t0, t1] * 4 + [t1, t1] + [p0, t0] * 4 + [t0, t0]).fetchone()
    keys = ("started", "completed", "median_seconds", "p90_seconds", "wip")
    return {"current": dict(zip(keys, row[0:5], strict=True)), "previous": dict(zip(keys, row[5:10], strict=True)),
            "open": row[10], "cases": row[11], "start": t0, "end": t1, "previous_start": p0}


def open_by(con: duckdb.DuckDBPyConnection, flt: ViewFilter | None, by: str = "last_source",
            end_activities: list[str] | None = None, idle_days: float = 30, now: str | None = None) -> pd.DataFrame:
    """Open cases grouped by the source system or the activity of their last event, with median age (s)."""
    if by not in ("last_source", "last_activity"):
        raise ValueError("by must be last_source or last_activity")
    now_ts = datetime.fromisoformat(now) if now else datetime.utcnow()
    cte, params = _case_spans(con, flt, end_activities, idle_days, now_ts, _fresh_aggregates(con))
    id_col = _NAMED[by][0]
    name, join = _named(by, "g")
    return _df(con, cte + f""",
        g AS (SELECT {id_col}, count(*) AS open_cases, median((epoch(?::TIMESTAMP) - epoch(last_ts))) AS median_wait_seconds
              FROM pc WHERE NOT closed GROUP BY 1)
        SELECT {name} AS "group", g.open_cases, g.median_wait_seconds
        FROM g{join} ORDER BY open_cases DESC, 1 LIMIT 30""", params + [now_ts])


def kpi_cases(con: duckdb.DuckDBPyConnection, flt: ViewFilter | None, kind: str, start: str, end: str,
              end_activities: list[str] | None = None, idle_days: float = 30, now: str | None = None,
              limit: int = 500) -> pd.DataFrame:
    """The cases behind a Health number: ``started``, ``completed`` or ``wip`` in the period, or ``open`` now."""
    t0, t1 = datetime.fromisoformat(start), datetime.fromisoformat(end)
    now_ts = datetime.fromisoformat(now) if now else t1
    cte, params = _case_spans(con, flt, end_activities, idle_days, now_ts, _fresh_aggregates(con))
    cond = {"started": ("first_ts >= ? AND first_ts < ?", [t0, t1]),
            "completed": ("closed AND last_ts >= ? AND last_ts < ?", [t0, t1]),
            "wip": ("first_ts < ? AND (NOT closed OR last_ts >= ?)", [t1, t1]),
            "open": ("NOT closed", [])}
    if kind not in cond:
        raise ValueError(f"kind must be one of {', '.join(cond)}")
    where, wparams = cond[kind]
    (activity, activity_join), (source, source_join) = _named("last_activity", "pc"), _named("last_source", "pc")
    # the newest ``limit`` rows (and rows tied with the last of them) get their case ids: not every case
    return _df(con, cte + f""",
        hit AS (SELECT * FROM pc WHERE {where}),
        cut AS (SELECT min(last_ts) AS t FROM (SELECT last_ts FROM hit ORDER BY last_ts DESC LIMIT {int(limit)}))
        SELECT c.case_id, pc.first_ts, pc.last_ts, {activity} AS last_activity, {source} AS last_source,
               (epoch(pc.last_ts) - epoch(pc.first_ts)) / 86400.0 AS duration_days, pc.closed
        FROM hit pc JOIN cases c USING (case_key){activity_join}{source_join}
        WHERE pc.last_ts >= (SELECT t FROM cut)
        ORDER BY pc.last_ts DESC, c.case_id LIMIT {int(limit)}""", params + wparams)


def _waits_cte(flt: ViewFilter | None) -> tuple[str, list[Any]]:
    """CTE ``w``: every event with the wait since the previous event of its case and who/where it happened."""
    with_, params = _scope(flt)
    with_ = with_ + ", " if with_ else "WITH "
    return with_ + f"""
        w AS (SELECT a.name AS activity, e.resource, s.name AS source, e.ts,
                     (epoch(e.ts) - epoch(lag(e.ts) OVER win)) AS wait
              FROM events e JOIN activities a USING (activity_id) JOIN sources s USING (source_id){_join(flt)}
              WINDOW win AS (PARTITION BY e.case_key ORDER BY e.ts, e.event_id))""", params


def wait_by_activity_week(con: duckdb.DuckDBPyConnection, flt: ViewFilter | None = None, top: int = 15) -> pd.DataFrame:
    """Median wait before each of the ``top`` most-waited-for activities, per week."""
    cte, params = _waits_cte(flt)
    return _df(con, cte + f"""
        , topa AS (SELECT activity FROM w WHERE wait IS NOT NULL GROUP BY activity ORDER BY sum(wait) DESC LIMIT {int(top)})
        SELECT date_trunc('week', ts) AS week, activity, count(*) AS events, median(wait) AS median_seconds
        FROM w WHERE wait IS NOT NULL AND activity IN (SELECT activity FROM topa) GROUP BY ALL ORDER BY week, activity""",
               params)


def wait_by_resource(con: duckdb.DuckDBPyConnection, flt: ViewFilter | None = None, top: int = 30) -> pd.DataFrame:
    """Waiting before the events of each resource: events, total and median wait, share of all waiting."""
    cte, params = _waits_cte(flt)
    return _df(con, cte + f"""
        SELECT coalesce(resource, '(none)') AS resource, count(*) AS events, sum(wait) AS total_wait_seconds,
               median(wait) AS median_seconds, sum(wait) / sum(sum(wait)) OVER () AS share_of_waiting
        FROM w WHERE wait IS NOT NULL GROUP BY 1 ORDER BY total_wait_seconds DESC LIMIT {int(top)}""", params)


def on_time_share(con: duckdb.DuckDBPyConnection, flt: ViewFilter | None, start: str, end: str,
                  sla: dict[str, float], end_activities: list[str] | None = None, idle_days: float = 30,
                  now: str | None = None) -> dict[str, Any]:
    """Share of the cases completed in [start, end) (and the period before) where no step waited past its SLA.

    ``sla`` maps an activity to the maximum wait before it (seconds) since the case's previous event.
    """
    t0, t1 = datetime.fromisoformat(start), datetime.fromisoformat(end)
    p0 = t0 - (t1 - t0)
    if not sla:
        return {"current": None, "previous": None}
    now_ts = datetime.fromisoformat(now) if now else t1
    fresh = _fresh_aggregates(con)
    cte, params = _case_spans(con, flt, end_activities, idle_days, now_ts, fresh)
    if fresh:
        ids = _activity_id_map(con)
        limits = tuple(sorted((ids[a], float(v)) for a, v in sla.items() if a in ids))
        late = _late_cases(con, limits)
        got = con.execute(cte + """,
            done AS (SELECT case_key, last_ts >= ? AS cur FROM pc WHERE closed AND last_ts >= ? AND last_ts < ?)
            SELECT case_key, cur FROM done""", params + [t0, p0, t1]).fetchnumpy()
        keys, cur = np.asarray(got["case_key"], dtype=np.int64), np.asarray(got["cur"], dtype=bool)
        on_time = ~late[np.minimum(keys, len(late) - 1)]  # keys beyond the array: its last, False, entry
        rows = [(flag, int(np.count_nonzero(cur == flag)), int(np.count_nonzero(on_time & (cur == flag))))
                for flag in (True, False) if np.any(cur == flag)]
    else:
        late = f"""
            sla AS (SELECT unnest(?::VARCHAR[]) AS activity, unnest(?::DOUBLE[]) AS sla),
            w AS (SELECT e.case_key, a.name AS activity, (epoch(e.ts) - epoch(lag(e.ts) OVER (PARTITION BY e.case_key
                         ORDER BY {EVENT_ORDER}))) AS wait FROM events e JOIN activities a USING (activity_id)
                  WHERE e.case_key IN (SELECT case_key FROM done)),
            late AS (SELECT DISTINCT w.case_key FROM w JOIN sla s USING (activity) WHERE w.wait > s.sla)"""
        rows = con.execute(cte + f""",
            done AS (SELECT case_key, last_ts FROM pc WHERE closed AND last_ts >= ? AND last_ts < ?),{late}
            SELECT (d.last_ts >= ?) AS cur, count(*) AS cases, count(*) FILTER (WHERE l.case_key IS NULL) AS on_time
            FROM done d LEFT JOIN late l USING (case_key) GROUP BY 1""",
                           params + [p0, t1, list(sla), [float(v) for v in sla.values()], t0]).fetchall()
    got = {bool(cur): (n, ok) for cur, n, ok in rows}
    share = {k: (v[1] / v[0] if v[0] else None) for k, v in got.items()}
    return {"current": share.get(True), "previous": share.get(False),
            "completed": got.get(True, (0, 0))[0], "on_time": got.get(True, (0, 0))[1]}


def _late_cases(con: duckdb.DuckDBPyConnection, limits: tuple[tuple[int, float], ...]) -> np.ndarray:
    """A boolean per ``case_key`` (one more than the largest, always False, for keys beyond it): whether
    some event of the case waited longer than its activity's SLA since the case's previous event.

    ``limits``: (activity id, SLA seconds). It does not depend on any filter, so it is read once per
    open store handle (a scan of every maintained directly-follows pair, 0.1-0.2 s at 10M events)
    and each filter then only picks its completed cases.
    """
    def compute() -> np.ndarray:
        from analytics.plan import top_case_key

        top = top_case_key(con)
        keys = con.execute("""
            WITH sla AS (SELECT unnest(?::INTEGER[]) AS tgt_id, unnest(?::DOUBLE[]) AS sla)
            SELECT DISTINCT d.case_key FROM an_edges d JOIN sla USING (tgt_id)
            WHERE epoch(d.tgt_ts) - epoch(d.src_ts) > sla.sla""",
                           [[k for k, _ in limits], [v for _, v in limits]]).fetchnumpy()["case_key"]
        late = np.zeros(top + 2, dtype=bool)
        late[np.asarray(keys, dtype=np.int64)] = True
        return late

    return snapshot.remember(("dashboard.late_cases", limits), compute)


def _source_mask(con: duckdb.DuckDBPyConnection, names: tuple[str, ...]) -> int | None:
    """The ``an_cases.source_mask`` bits of these sources; None when there are none or a source has no bit
    (the analytics engine's own :func:`analytics.plan.source_mask`, on the maintained summaries)."""
    if not names:
        return None
    from analytics.plan import source_mask

    return source_mask(con, list(names), fast=True)


def selected_case_keys(con: duckdb.DuckDBPyConnection, flt: ViewFilter) -> Any:
    """The ``case_key`` values a (non-empty) filter selects, as a numpy array (in no particular order).

    Reads the maintained aggregates for time ranges and variants when they are fresh; the
    result is the same as :meth:`ViewFilter.cases_sql` over the events.
    """
    fresh = _fresh_aggregates(con)
    sql, params = flt.cases_sql(aggregates=fresh, source_mask=_source_mask(con, flt.sources) if fresh else None)
    keys = con.execute(f"SELECT case_key FROM ({sql})", params).fetchnumpy()["case_key"]
    return keys.astype("int64") if hasattr(keys, "astype") else keys


def selected_case_ids(con: duckdb.DuckDBPyConnection, flt: ViewFilter | None = None) -> list[str] | None:
    """The ids of the cases a filter selects (None: no filter, all cases)."""
    if flt is None or flt.is_empty:
        return None
    sql, params = flt.cases_sql()
    return [r[0] for r in con.execute(f"SELECT case_id FROM cases WHERE case_key IN ({sql})", params).fetchall()]

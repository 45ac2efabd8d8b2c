"""Incremental maintenance of the analytics aggregates.

First level, one row per pair or case: ``an_edges``, ``an_cases``, ``an_variants`` (0004). Second
level (0005): one row per edge in ``an_edge_stats``, with the histogram ``an_edge_hist`` and the bucket
contents ``an_edge_vals`` that keep its quantiles exact (the unfiltered DFG reads it); and
``an_case_rows``, the case summaries with their case id (the case table reads it).

The aggregates hold the event data up to a watermark: the largest ``event_id`` folded in, plus the
number of events at or below it (a changed count means events were deleted or rewritten, and the
aggregates are rebuilt). A refresh sorts the cases touched by newer events into three kinds:

- **new** cases (no summary yet): computed from the new events alone;
- **extended** cases, whose new events all come after their last event (the usual append): the
  new pairs are the old last event (kept in ``an_cases``) followed by the new events, and the
  old activity sequence (``an_variants``) tells which pairs the case already had; nothing of
  the case is read from ``events`` or deleted from ``an_edges``;
- **rewritten** cases (a new event lands before the last one): recomputed completely.

The edge statistics then change by the pairs added and removed, exactly: counts and sums by
their deltas, and min, median, p90 and max by locating their rank in the histogram and reading
the value in that bucket's kept contents (``an_edges`` is scanned only for a bucket not kept).
The ingest loader (or ``processlens mine refresh``) calls :func:`refresh` after a commit; readers
use the aggregates only while :func:`is_fresh` holds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import duckdb

from analytics.queries import (
    CASE_COLUMNS,
    CASE_ROW_COLUMNS,
    EDGE_COLUMNS,
    EDGE_SECONDS,
    bucket_sql,
    case_rows_sql,
    cases_sql,
    edge_delta_sql,
    edge_hist_sql,
    edge_stats_sql,
    edges_sql,
)
from processlens import snapshot

#: the columns of ``events`` that edges_sql and cases_sql read
EVENT_COLUMNS = "case_key, event_id, activity_id, ts, resource, source_id"
#: beyond this share of touched cases a full rebuild is cheaper than deleting and re-inserting
REBUILD_SHARE = 0.35
#: the quantiles kept per edge, as (column, q); min and max are the quantiles 0 and 1
EDGE_QUANTILES = (("min_seconds", 0.0), ("median_seconds", 0.5), ("p90_seconds", 0.9), ("max_seconds", 1.0))
STATS_TABLES = ("an_edge_stats", "an_edge_hist", "an_edge_vals")
#: second-level aggregates, maintained from the first level (an_state has a row per table with its watermark)
SECOND_LEVEL = ("an_edge_stats", "an_case_rows")
#: non-empty buckets kept on each side of a quantile's bucket, so that it usually moves into a kept one
KEEP_AROUND = 3


@dataclass
class RefreshResult:
    mode: str  # "none", "incremental" or "full"
    touched_cases: int
    new_events: int
    seconds: float
    rewritten_cases: int = 0  # touched cases recomputed from all their events (a new event before the last one)


def _an_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Which of the aggregate tables this store has (migrations 0004 and 0005)."""
    return snapshot.remember("analytics.an_tables", lambda: {name for (name,) in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_name IN ('an_state', 'an_edge_stats', 'an_case_rows')"
    ).fetchall()})


def _second_level(tables: set[str]) -> list[str]:
    """The second-level tables present (each is fresh when its an_state row equals the watermark)."""
    return [t for t in SECOND_LEVEL if t in tables] if "an_state" in tables else []


def _state_rows(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return snapshot.remember("analytics.an_state", lambda: dict(con.execute("SELECT key, value FROM an_state").fetchall()))


def _state(con: duckdb.DuckDBPyConnection) -> tuple[int, int] | None:
    rows = _state_rows(con)
    if "watermark" not in rows:
        return None
    return int(rows["watermark"]), int(rows["count"])


def is_fresh(con: duckdb.DuckDBPyConnection) -> bool:
    """True when the aggregates cover exactly the events in the store."""
    return snapshot.remember("analytics.is_fresh", lambda: _is_fresh(con))


def _is_fresh(con: duckdb.DuckDBPyConnection) -> bool:
    if "an_state" not in _an_tables(con):
        return False
    state = _state(con)
    if state is None:
        return False
    watermark, count = state
    # the largest id is the watermark (so every event is at or below it) and none was added or removed;
    # DuckDB answers count(*) and max() of a stored column from its statistics, without a scan
    total, top = con.execute("SELECT count(*), coalesce(max(event_id), -1) FROM events").fetchall()[0]
    return top == watermark and total == count


def _second_fresh(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    if table not in _second_level(_an_tables(con)):
        return False
    rows = _state_rows(con)
    return "watermark" in rows and rows.get(table) == rows["watermark"]


def edge_stats_fresh(con: duckdb.DuckDBPyConnection) -> bool:
    """True when ``an_edge_stats`` describes the current ``an_edges`` (check :func:`is_fresh` for the events)."""
    return _second_fresh(con, "an_edge_stats")


def case_rows_fresh(con: duckdb.DuckDBPyConnection) -> bool:
    """True when ``an_case_rows`` matches the current ``an_cases`` (check :func:`is_fresh` for the events)."""
    return _second_fresh(con, "an_case_rows")


def _write_state(con: duckdb.DuckDBPyConnection, second: list[str], top: int | None = None,
                 count: int | None = None) -> None:
    """Record the watermark (scanning ``events`` for it unless the caller knows it) and that the tables in
    ``second`` are up to date with it."""
    if top is None or count is None:
        top, count = con.execute("SELECT coalesce(max(event_id), -1), count(*) FROM events").fetchall()[0]
    con.execute("DELETE FROM an_state")
    rows = [("watermark", str(top)), ("count", str(count))] + [(t, str(top)) for t in second]
    con.execute("INSERT INTO an_state VALUES " + ", ".join("(?, ?)" for _ in rows), [x for r in rows for x in r])


def _rebuild_case_rows(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("DELETE FROM an_case_rows")
    con.execute(f"INSERT INTO an_case_rows SELECT {CASE_ROW_COLUMNS} FROM ({case_rows_sql('an_cases')})")


def _update_case_rows(con: duckdb.DuckDBPyConnection) -> None:
    """Replace the rows of the touched cases (summaries in ``_an_cases``)."""
    con.execute("DELETE FROM an_case_rows WHERE case_key IN (SELECT case_key FROM _an_touched WHERE kind <> 'n')")
    con.execute(f"INSERT INTO an_case_rows SELECT {CASE_ROW_COLUMNS} FROM ({case_rows_sql('_an_cases')})")


def _insert_variants(con: duckdb.DuckDBPyConnection, cases_relation: str) -> None:
    con.execute(
        f"""
        INSERT INTO an_variants
        SELECT variant_id, any_value(trace) FROM {cases_relation}
        WHERE variant_id NOT IN (SELECT variant_id FROM an_variants)
        GROUP BY variant_id
        """
    )


def _in_transaction(con: duckdb.DuckDBPyConnection, work) -> None:
    con.execute("BEGIN TRANSACTION")
    try:
        work()
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise


def rebuild(con: duckdb.DuckDBPyConnection) -> RefreshResult:
    """Recompute all aggregates from ``events``."""
    t0 = time.perf_counter()
    second = _second_level(_an_tables(con) | {"an_state"})

    def work() -> None:
        for table in ("an_edges", "an_cases", "an_variants", "an_state"):
            con.execute(f"DELETE FROM {table}")
        con.execute(f"INSERT INTO an_edges SELECT {EDGE_COLUMNS} FROM ({edges_sql('events')})")
        con.execute(f"CREATE OR REPLACE TEMP TABLE _an_cases AS {cases_sql('events', with_trace=True)}")
        con.execute(f"INSERT INTO an_cases SELECT {CASE_COLUMNS} FROM _an_cases")
        _insert_variants(con, "_an_cases")
        con.execute("DROP TABLE _an_cases")
        for table in second:
            _SECOND_REBUILD[table](con)
        _write_state(con, second)

    _in_transaction(con, work)
    n = con.execute("SELECT count(*) FROM an_cases").fetchall()[0][0]
    events = con.execute("SELECT count(*) FROM events").fetchall()[0][0]
    return RefreshResult("full", n, events, time.perf_counter() - t0)


def refresh(con: duckdb.DuckDBPyConnection, force_full: bool = False) -> RefreshResult:
    """Bring the aggregates up to date: nothing, the touched cases only, or a full rebuild."""
    t0 = time.perf_counter()
    tables = _an_tables(con)
    if force_full or "an_state" not in tables:
        return rebuild(con)
    threads = con.execute("SELECT current_setting('threads')").fetchall()[0][0]
    # about thirty small statements over the new events: one thread is as fast, and does not stall at the
    # barriers of parallel operators when the machine is busy
    con.execute("SET threads = 1")
    try:
        con.execute("BEGIN TRANSACTION")  # the watermark read and the fold-in see the same events
        try:
            result = _refresh(con, _second_level(tables))
        except Exception:
            con.execute("ROLLBACK")
            raise
        if result is not None:
            con.execute("COMMIT")
        else:
            con.execute("ROLLBACK")
    finally:
        con.execute(f"SET threads = {int(threads)}")
    if result is None:
        return rebuild(con)
    result.seconds = time.perf_counter() - t0
    return result


def _refresh(con: duckdb.DuckDBPyConnection, second: list[str]) -> RefreshResult | None:
    """The body of :func:`refresh` inside its transaction; None when a full rebuild is needed instead."""
    state = _state(con)
    if state is None:
        return None
    watermark, count = state
    upto, top = con.execute(
        "SELECT count(*) FILTER (WHERE event_id <= ?), coalesce(max(event_id), -1) FROM events", [watermark]
    ).fetchall()[0]
    if upto != count or top < watermark:
        return None  # events at or below the watermark changed: start over
    rows = _state_rows(con)
    stale = [t for t in second if rows.get(t) != rows["watermark"]]  # e.g. from before the table existed
    if top == watermark:
        if stale:
            for table in stale:
                _SECOND_REBUILD[table](con)
            _write_state(con, second, watermark, count)
        return RefreshResult("none", 0, 0, 0.0)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _an_new AS SELECT {EVENT_COLUMNS} FROM events WHERE event_id > ?",
                [watermark])
    # kind of each touched case: 'n'ew, 'x' extended at its end, 'r'ewritten
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _an_touched AS
        SELECT n.case_key, CASE WHEN any_value(c.case_key) IS NULL THEN 'n'
                                WHEN min(n.ts) >= any_value(c.end_ts) THEN 'x' ELSE 'r' END AS kind
        FROM _an_new n LEFT JOIN an_cases c USING (case_key) GROUP BY n.case_key
        """
    )
    touched, rewritten = con.execute("SELECT count(*), count(*) FILTER (WHERE kind = 'r') FROM _an_touched").fetchall()[0]
    total_cases = con.execute("SELECT count(*) FROM an_cases").fetchall()[0][0] or 1
    new_events, new_top = con.execute("SELECT count(*), max(event_id) FROM _an_new").fetchall()[0]
    if touched > REBUILD_SHARE * total_cases:
        return None
    _fold_in(con, rewritten > 0)
    for table in second:
        (_SECOND_REBUILD if table in stale else _SECOND_UPDATE)[table](con)
    _drop_temp(con, "_an_new", "_an_touched", "_an_ins", "_an_rem", "_an_cases")
    _write_state(con, second, new_top, count + new_events)
    return RefreshResult("incremental", touched, new_events, 0.0, rewritten)


def _drop_temp(con: duckdb.DuckDBPyConnection, *names: str) -> None:
    for name in names:
        con.execute(f"DROP TABLE IF EXISTS {name}")


def _fold_in(con: duckdb.DuckDBPyConnection, any_rewritten: bool) -> None:
    """Update an_edges/an_cases/an_variants for the cases in ``_an_touched``; the pairs added go to
    ``_an_ins`` and the pairs removed to ``_an_rem`` (for the edge statistics)."""
    # extended and new cases: their new events, after the last event of the extended ones
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _an_tail AS
        SELECT {EVENT_COLUMNS} FROM _an_new WHERE case_key IN (SELECT case_key FROM _an_touched WHERE kind <> 'r')
        """
    )
    # the summary rows and activity sequences of the extended cases (one read of an_cases)
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _an_prev AS
        SELECT c.*, v.trace FROM an_cases c JOIN an_variants v USING (variant_id)
        WHERE c.case_key IN (SELECT case_key FROM _an_touched WHERE kind = 'x')
        """
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _an_tail_ev AS
        SELECT {EVENT_COLUMNS} FROM _an_tail
        UNION ALL
        SELECT case_key, last_event_id, last_activity_id, end_ts, last_resource, last_source_id FROM _an_prev
        """
    )
    # the (source, target) pairs an extended case had already, from its variant's activity sequence
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _an_old_pairs AS
        SELECT DISTINCT variant_id, trace[i] AS src_id, trace[i + 1] AS tgt_id
        FROM (SELECT variant_id, trace FROM an_variants WHERE variant_id IN (SELECT variant_id FROM _an_prev)) v,
             generate_series(1, len(trace) - 1) AS g(i)
        """
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _an_ins AS
        SELECT e.case_key, e.src_event_id, e.tgt_event_id, e.src_id, e.tgt_id, e.src_ts, e.tgt_ts, e.src_resource,
               e.tgt_resource, e.src_source_id, e.tgt_source_id, e.first_in_case AND o.variant_id IS NULL AS first_in_case
        FROM ({edges_sql('_an_tail_ev')}) e
        LEFT JOIN _an_prev c USING (case_key)
        LEFT JOIN _an_old_pairs o ON o.variant_id = c.variant_id AND o.src_id = e.src_id AND o.tgt_id = e.tgt_id
        """
    )
    # summaries: new cases from their events; extended ones continue their old summary
    con.execute(f"CREATE OR REPLACE TEMP TABLE _an_tail_cs AS {cases_sql('_an_tail', with_trace=True)}")
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _an_cases AS
        SELECT * FROM _an_tail_cs WHERE case_key IN (SELECT case_key FROM _an_touched WHERE kind = 'n')
        UNION ALL
        SELECT {CASE_COLUMNS}, trace FROM (
            SELECT t.case_key, c.start_ts, t.end_ts, c.n_events + t.n_events AS n_events, c.first_activity_id,
                   t.last_activity_id, t.last_event_id, t.last_resource, t.last_source_id,
                   list_concat(c.trace, t.trace) AS trace, CAST(hash(list_concat(c.trace, t.trace)) >> 1 AS BIGINT) AS variant_id,
                   c.source_mask | t.source_mask AS source_mask
            FROM _an_tail_cs t JOIN _an_prev c USING (case_key)
        ) x
        """
    )
    if any_rewritten:
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE _an_ev AS SELECT {EVENT_COLUMNS} FROM events
            WHERE case_key IN (SELECT case_key FROM _an_touched WHERE kind = 'r')
            """
        )
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE _an_rem AS SELECT {EDGE_COLUMNS} FROM an_edges
            WHERE case_key IN (SELECT case_key FROM _an_touched WHERE kind = 'r')
            """
        )
        con.execute("DELETE FROM an_edges WHERE case_key IN (SELECT case_key FROM _an_touched WHERE kind = 'r')")
        con.execute(f"INSERT INTO _an_ins SELECT {EDGE_COLUMNS} FROM ({edges_sql('_an_ev')})")
        con.execute(f"INSERT INTO _an_cases SELECT {CASE_COLUMNS}, trace FROM ({cases_sql('_an_ev', with_trace=True)})")
        con.execute("DROP TABLE _an_ev")
    else:
        con.execute(f"CREATE OR REPLACE TEMP TABLE _an_rem AS SELECT {EDGE_COLUMNS} FROM an_edges LIMIT 0")
    con.execute(f"INSERT INTO an_edges SELECT {EDGE_COLUMNS} FROM _an_ins")
    con.execute("DELETE FROM an_cases WHERE case_key IN (SELECT case_key FROM _an_touched WHERE kind <> 'n')")
    con.execute(f"INSERT INTO an_cases SELECT {CASE_COLUMNS} FROM _an_cases")
    _insert_variants(con, "_an_cases")
    _drop_temp(con, "_an_tail", "_an_tail_ev", "_an_tail_cs", "_an_old_pairs", "_an_prev")


# -- second level: per-edge statistics -----------------------------------------------------------
def _rebuild_edge_stats(con: duckdb.DuckDBPyConnection) -> None:
    """Compute an_edge_stats/an_edge_hist/an_edge_vals from all of ``an_edges``."""
    for table in STATS_TABLES:
        con.execute(f"DELETE FROM {table}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _an_delta AS {edge_delta_sql('an_edges', 1)}")
    con.execute(
        "INSERT INTO an_edge_stats (src_id, tgt_id, frequency, cases, total_us) "
        f"SELECT * FROM ({edge_stats_sql('_an_delta')}) WHERE frequency > 0"
    )
    con.execute(f"INSERT INTO an_edge_hist SELECT * FROM ({edge_hist_sql('_an_delta')}) WHERE n > 0")
    con.execute("DROP TABLE _an_delta")
    _settle_quantiles(con)


def _update_edge_stats(con: duckdb.DuckDBPyConnection) -> None:
    """Fold the pairs in ``_an_ins`` (added) and ``_an_rem`` (removed) into the edge statistics."""
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _an_delta AS {edge_delta_sql('_an_ins', 1)} UNION ALL {edge_delta_sql('_an_rem', -1)}"
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _an_new_stats AS
        SELECT src_id, tgt_id, sum(frequency) AS frequency, sum(cases) AS cases, sum(total_us) AS total_us
        FROM (SELECT src_id, tgt_id, frequency, cases, total_us FROM an_edge_stats
              UNION ALL {edge_stats_sql('_an_delta')}) s
        GROUP BY src_id, tgt_id HAVING sum(frequency) > 0
        """
    )
    # histogram: only the buckets the delta touches are rewritten (``was`` is NULL for a bucket that was empty)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _an_new_hist AS
        SELECT d.src_id, d.tgt_id, d.bucket, coalesce(h.n, 0) + d.n AS n, h.n AS was
        FROM ({edge_hist_sql('_an_delta')}) d
        LEFT JOIN an_edge_hist h USING (src_id, tgt_id, bucket)
        """
    )
    # bucket contents stay exact: the kept buckets gain and lose the durations of the delta that fall in them,
    # and a bucket that was empty before holds just the delta's durations (so it is known without a scan)
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _an_new_vals AS
        SELECT x.src_id, x.tgt_id, x.bucket, x.d, coalesce(v.n, 0) + x.n AS n
        FROM (SELECT src_id, tgt_id, bucket, d, sum(s) AS n FROM _an_delta
              SEMI JOIN (SELECT DISTINCT src_id, tgt_id, bucket FROM an_edge_vals
                         UNION
                         SELECT src_id, tgt_id, bucket FROM _an_new_hist WHERE was IS NULL) k
                   USING (src_id, tgt_id, bucket)
              GROUP BY ALL) x
        LEFT JOIN an_edge_vals v USING (src_id, tgt_id, bucket, d)
        """
    )
    con.execute("DELETE FROM an_edge_stats")
    con.execute("INSERT INTO an_edge_stats (src_id, tgt_id, frequency, cases, total_us) SELECT * FROM _an_new_stats")
    con.execute("DELETE FROM an_edge_hist h USING _an_new_hist x "
                "WHERE h.src_id = x.src_id AND h.tgt_id = x.tgt_id AND h.bucket = x.bucket")
    con.execute("INSERT INTO an_edge_hist SELECT src_id, tgt_id, bucket, n FROM _an_new_hist WHERE n > 0")
    con.execute("DELETE FROM an_edge_vals v USING _an_new_vals x "
                "WHERE v.src_id = x.src_id AND v.tgt_id = x.tgt_id AND v.bucket = x.bucket AND v.d = x.d")
    con.execute("INSERT INTO an_edge_vals SELECT * FROM _an_new_vals WHERE n > 0")
    _drop_temp(con, "_an_delta", "_an_new_stats", "_an_new_hist", "_an_new_vals")
    _settle_quantiles(con)


# how each second-level table is rebuilt from, or brought up to date with, the first-level ones
_SECOND_REBUILD = {"an_edge_stats": _rebuild_edge_stats, "an_case_rows": _rebuild_case_rows}
_SECOND_UPDATE = {"an_edge_stats": _update_edge_stats, "an_case_rows": _update_case_rows}


def _fma(x: float, y: float, z: float) -> float:
    """``x * y + z`` rounded once, as a fused multiply-add does."""
    return float(Fraction(x) * Fraction(y) + Fraction(z))


#: ways a build of DuckDB may evaluate quantile_cont's ``lo * (1 - d) + hi * d`` in floating point
_INTERPOLATIONS: dict[str, Callable[[float, float, float], float]] = {
    "fused": lambda lo, d, hi: _fma(lo, 1.0 - d, hi * d),
    "plain": lambda lo, d, hi: lo * (1.0 - d) + hi * d,
    "delta": lambda lo, d, hi: lo + (hi - lo) * d,
}
#: (n, q, lo, hi) cases on which the candidates disagree
_CALIBRATION = ((582, 0.9, 878195.0, 882066.0), (100, 0.9, 896080.0, 897434.0), (128, 0.9, 883592.0, 891060.0),
                (552, 0.9, 907572.0, 911244.0), (594, 0.9, 904284.0, 907135.0), (97, 0.9, 900880.0, 903608.0))
_interpolate: Callable[[float, float, float], float] | None = None


def interpolation(con: duckdb.DuckDBPyConnection) -> Callable[[float, float, float], float]:
    """The interpolation that reproduces this DuckDB's ``quantile_cont`` bit for bit (checked once per process)."""
    global _interpolate
    if _interpolate is None:
        got = []
        for n, q, lo_v, hi_v in _CALIBRATION:
            h, lo, _ = _quantile_ranks(n, q)
            values = [lo_v] * (lo + 1) + [hi_v] * (n - lo - 1)
            got.append((con.execute(f"SELECT quantile_cont(x, {q!r}) FROM (SELECT unnest(?::DOUBLE[]) AS x)",
                                    [values]).fetchall()[0][0], lo_v, h - lo, hi_v))
        for fn in _INTERPOLATIONS.values():
            if all(fn(lo_v, d, hi_v) == want for want, lo_v, d, hi_v in got):
                _interpolate = fn
                break
        else:
            raise RuntimeError("this DuckDB build interpolates quantiles in a way analytics.incremental does not know")
    return _interpolate


def _quantile_ranks(n: int, q: float) -> tuple[float, int, int]:
    """DuckDB's ``quantile_cont`` positions: ``h = (n - 1) q`` between the 0-based ranks floor(h) and ceil(h)."""
    h = float(n - 1) * q
    return h, math.floor(h), math.ceil(h)


def _settle_quantiles(con: duckdb.DuckDBPyConnection) -> None:
    """Set min/median/p90/max of every edge from the histogram and the kept bucket contents.

    The bucket holding each needed rank comes from the cumulative histogram. The contents of the buckets
    around it are kept in ``an_edge_vals``; when a quantile has moved out of them, the neighbourhoods not
    kept are read from ``an_edges`` (one scan for all), and buckets far from every quantile are dropped.
    """
    stats = con.execute("SELECT src_id, tgt_id, frequency FROM an_edge_stats").fetchall()
    hist: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for s, t, b, n in con.execute("SELECT src_id, tgt_id, bucket, n FROM an_edge_hist ORDER BY src_id, tgt_id, bucket").fetchall():
        hist.setdefault((s, t), []).append((b, n))
    targets: list[tuple[int, int, int, int, int]] = []  # src, tgt, rank, bucket, rank inside the bucket
    keep: set[tuple[int, int, int]] = set()  # the buckets around each target's: where the quantiles move next
    for s, t, n in stats:
        ranks = sorted({r for _, q in EDGE_QUANTILES for r in _quantile_ranks(n, q)[1:]})
        before, i, buckets = 0, 0, hist[(s, t)]
        for r in ranks:
            while before + buckets[i][1] <= r:
                before += buckets[i][1]
                i += 1
            targets.append((s, t, r, buckets[i][0], r - before))
            keep.update((s, t, b) for b, _ in buckets[max(0, i - KEEP_AROUND):i + KEEP_AROUND + 1])
    _insert_ints(con, "_an_targets (src_id INTEGER, tgt_id INTEGER, r BIGINT, bucket INTEGER, j BIGINT)", targets)
    _insert_ints(con, "_an_keep (src_id INTEGER, tgt_id INTEGER, bucket INTEGER)", sorted(keep))
    con.execute(  # when a target's bucket is not kept, fetch every bucket of the neighbourhoods not kept (one scan)
        """
        CREATE OR REPLACE TEMP TABLE _an_missing AS
        SELECT src_id, tgt_id, bucket FROM _an_keep
        ANTI JOIN (SELECT DISTINCT src_id, tgt_id, bucket FROM an_edge_vals) k USING (src_id, tgt_id, bucket)
        WHERE EXISTS (SELECT 1 FROM _an_targets ANTI JOIN (SELECT DISTINCT src_id, tgt_id, bucket FROM an_edge_vals) k2
                      USING (src_id, tgt_id, bucket))
        """
    )
    if con.execute("SELECT count(*) FROM _an_missing").fetchall()[0][0]:
        con.execute(
            f"""
            INSERT INTO an_edge_vals
            SELECT src_id, tgt_id, bucket, d, count(*) FROM (
                SELECT src_id, tgt_id, d, {bucket_sql('d')} AS bucket
                FROM (SELECT src_id, tgt_id, {EDGE_SECONDS} AS d FROM an_edges
                      WHERE src_id IN (SELECT src_id FROM _an_missing)) x
            ) y
            SEMI JOIN _an_missing USING (src_id, tgt_id, bucket)
            GROUP BY src_id, tgt_id, bucket, d
            """
        )
    con.execute("DELETE FROM an_edge_vals v WHERE NOT EXISTS (SELECT 1 FROM _an_keep k WHERE k.src_id = v.src_id "
                "AND k.tgt_id = v.tgt_id AND k.bucket = v.bucket)")
    values = con.execute(
        """
        SELECT t.src_id, t.tgt_id, t.r, v.d
        FROM _an_targets t
        JOIN (SELECT *, sum(n) OVER (PARTITION BY src_id, tgt_id, bucket ORDER BY d) - n AS before
              FROM an_edge_vals SEMI JOIN _an_targets USING (src_id, tgt_id, bucket)) v
          ON v.src_id = t.src_id AND v.tgt_id = t.tgt_id AND v.bucket = t.bucket AND t.j >= v.before AND t.j < v.before + v.n
        """
    ).fetchall()
    at = {(s, t, r): d for s, t, r, d in values}
    interpolate = interpolation(con)
    rows = []
    for s, t, n in stats:
        out = []
        for _, q in EDGE_QUANTILES:
            h, lo, hi = _quantile_ranks(n, q)
            a, b = at[(s, t, lo)], at[(s, t, hi)]
            out.append(a if lo == hi else interpolate(a, h - lo, b))
        rows.append([*out, s, t])
    if rows:
        con.executemany(
            "UPDATE an_edge_stats SET min_seconds = ?, median_seconds = ?, p90_seconds = ?, max_seconds = ? "
            "WHERE src_id = ? AND tgt_id = ?", rows)
    _drop_temp(con, "_an_targets", "_an_keep", "_an_missing")


def _insert_ints(con: duckdb.DuckDBPyConnection, table: str, rows: list[tuple[int, ...]]) -> None:
    """Create temp ``table`` (name and columns) and fill it with ``rows`` of integers (literal VALUES are much
    faster than executemany)."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table}")
    name = table.split(" ", 1)[0]
    for i in range(0, len(rows), 1000):
        con.execute(f"INSERT INTO {name} VALUES " + ", ".join(
            "(" + ", ".join(str(int(x)) for x in row) + ")" for row in rows[i:i + 1000]))

"""Incremental maintenance of the analytics aggregates (``an_edges``, ``an_cases``, ``an_variants``).

The aggregates hold the event data up to a watermark: the largest ``event_id`` folded in, plus the
number of events at or below it (a changed count means events were deleted or rewritten, and the
aggregates are rebuilt). A refresh finds the cases touched by newer events and recomputes only
those cases — their new events may even be older than the ones already there, since the whole
case is recomputed. The ingest loader (or ``processlens mine refresh``) calls :func:`refresh`
after a commit; readers use the aggregates only while :func:`is_fresh` holds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import duckdb

from analytics.queries import CASE_COLUMNS, EDGE_COLUMNS, cases_sql, edges_sql

#: the columns of ``events`` that edges_sql and cases_sql read
EVENT_COLUMNS = "case_key, event_id, activity_id, ts, resource, source_id"
#: beyond this share of touched cases a full rebuild is cheaper than deleting and re-inserting
REBUILD_SHARE = 0.35


@dataclass
class RefreshResult:
    mode: str  # "none", "incremental" or "full"
    touched_cases: int
    new_events: int
    seconds: float


def _has_tables(con: duckdb.DuckDBPyConnection) -> bool:
    return bool(con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'an_state'"
    ).fetchall()[0][0])


def _state(con: duckdb.DuckDBPyConnection) -> tuple[int, int] | None:
    rows = dict(con.execute("SELECT key, value FROM an_state").fetchall())
    if "watermark" not in rows:
        return None
    return int(rows["watermark"]), int(rows["count"])


def is_fresh(con: duckdb.DuckDBPyConnection) -> bool:
    """True when the aggregates cover exactly the events in the store."""
    if not _has_tables(con):
        return False
    state = _state(con)
    if state is None:
        return False
    watermark, count = state
    total, upto, top = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE event_id <= ?), coalesce(max(event_id), -1) FROM events", [watermark]
    ).fetchall()[0]
    return top == watermark and upto == count and total == count


def _write_state(con: duckdb.DuckDBPyConnection) -> None:
    top, count = con.execute("SELECT coalesce(max(event_id), -1), count(*) FROM events").fetchall()[0]
    con.execute("DELETE FROM an_state")
    con.execute("INSERT INTO an_state VALUES ('watermark', ?), ('count', ?)", [str(top), str(count)])


def _insert_variants(con: duckdb.DuckDBPyConnection, cases_relation: str) -> None:
    con.execute(
        f"""
        INSERT INTO an_variants
        SELECT variant_id, any_value(trace) FROM {cases_relation}
        WHERE variant_id NOT IN (SELECT variant_id FROM an_variants)
        GROUP BY variant_id
        """
    )


def rebuild(con: duckdb.DuckDBPyConnection) -> RefreshResult:
    """Recompute all aggregates from ``events``."""
    t0 = time.perf_counter()
    con.execute("BEGIN TRANSACTION")
    try:
        for table in ("an_edges", "an_cases", "an_variants", "an_state"):
            con.execute(f"DELETE FROM {table}")
        con.execute(f"INSERT INTO an_edges SELECT {EDGE_COLUMNS} FROM ({edges_sql('events')})")
        con.execute(f"CREATE OR REPLACE TEMP TABLE _an_cases AS {cases_sql('events', with_trace=True)}")
        con.execute(f"INSERT INTO an_cases SELECT {CASE_COLUMNS} FROM _an_cases")
        _insert_variants(con, "_an_cases")
        con.execute("DROP TABLE _an_cases")
        _write_state(con)
        n = con.execute("SELECT count(*) FROM an_cases").fetchall()[0][0]
        events = con.execute("SELECT count(*) FROM events").fetchall()[0][0]
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return RefreshResult("full", n, events, time.perf_counter() - t0)


def refresh(con: duckdb.DuckDBPyConnection, force_full: bool = False) -> RefreshResult:
    """Bring the aggregates up to date: nothing, the touched cases only, or a full rebuild."""
    t0 = time.perf_counter()
    if force_full:
        return rebuild(con)
    state = _state(con) if _has_tables(con) else None
    if state is None:
        return rebuild(con)
    watermark, count = state
    upto, top = con.execute(
        "SELECT count(*) FILTER (WHERE event_id <= ?), coalesce(max(event_id), -1) FROM events", [watermark]
    ).fetchall()[0]
    if upto != count or top < watermark:
        return rebuild(con)  # events at or below the watermark changed: start over
    if top == watermark:
        return RefreshResult("none", 0, 0, time.perf_counter() - t0)
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _an_touched AS SELECT DISTINCT case_key FROM events WHERE event_id > ?",
            [watermark],
        )
        touched = con.execute("SELECT count(*) FROM _an_touched").fetchall()[0][0]
        total_cases = con.execute("SELECT count(*) FROM an_cases").fetchall()[0][0] or 1
        if touched > REBUILD_SHARE * total_cases:
            con.execute("ROLLBACK")
            return rebuild(con)
        new_events = con.execute("SELECT count(*) FROM events WHERE event_id > ?", [watermark]).fetchall()[0][0]
        con.execute(  # only the columns the aggregates read: attrs and record ids would cost a wide scan
            f"CREATE OR REPLACE TEMP TABLE _an_ev AS SELECT {EVENT_COLUMNS} FROM events "
            "WHERE case_key IN (SELECT case_key FROM _an_touched)"
        )
        con.execute("DELETE FROM an_edges WHERE case_key IN (SELECT case_key FROM _an_touched)")
        con.execute("DELETE FROM an_cases WHERE case_key IN (SELECT case_key FROM _an_touched)")
        con.execute(f"INSERT INTO an_edges SELECT {EDGE_COLUMNS} FROM ({edges_sql('_an_ev')})")
        con.execute(f"CREATE OR REPLACE TEMP TABLE _an_cases AS {cases_sql('_an_ev', with_trace=True)}")
        con.execute(f"INSERT INTO an_cases SELECT {CASE_COLUMNS} FROM _an_cases")
        _insert_variants(con, "_an_cases")
        for tmp in ("_an_cases", "_an_ev", "_an_touched"):
            con.execute(f"DROP TABLE {tmp}")
        _write_state(con)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return RefreshResult("incremental", touched, new_events, time.perf_counter() - t0)

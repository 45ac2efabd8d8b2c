"""Audit trail of actions, and delivered actions as events of their case (source ``processlens``).

The audit answers who or which rule did what, when, why, to which case, with which payload (by
hash), and each attempt's result. Delivered actions are also written to ``events`` so the case
timeline and the process map show them; their activity is ``Action: <type>``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import duckdb
import pandas as pd

from coordinator.outbox import now_utc
from processlens.events import ACTION_ACTIVITY_PREFIX as ACTIVITY_PREFIX
from processlens.events import ACTION_SOURCE as SOURCE


def write(con: duckdb.DuckDBPyConnection, actor: str, event: str, *, action_id: int | None = None,
          rule: str | None = None, case_id: str | None = None, payload_sha256: str | None = None,
          detail: str | None = None, at: datetime | None = None) -> None:
    """Append one audit record (inside the caller's transaction)."""
    con.execute(
        "INSERT INTO action_audit VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [at or now_utc(), actor, event, action_id, rule, case_id, payload_sha256, detail],
    )


def write_many(con: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]]) -> None:
    """Append many audit records (keys: actor, event, action_id, rule, case_id, payload_sha256, detail, at)."""
    if not rows:
        return
    from coordinator.outbox import _insert_df

    now = now_utc()
    df = pd.DataFrame([{
        "audit_at": r.get("at") or now, "actor": r["actor"], "event": r["event"], "action_id": r.get("action_id"),
        "rule": r.get("rule"), "case_id": r.get("case_id"), "payload_sha256": r.get("payload_sha256"),
        "detail": r.get("detail"),
    } for r in rows])
    _insert_df(con, "action_audit", df.astype({"action_id": "Int64"}))


def trail(con: duckdb.DuckDBPyConnection, action_id: int | None = None, case_id: str | None = None,
          limit: int = 1000) -> pd.DataFrame:
    """Audit records of one action or one case (or all), newest last."""
    where, params = [], []
    if action_id is not None:
        where.append("action_id = ?")
        params.append(action_id)
    if case_id is not None:
        where.append("case_id = ?")
        params.append(case_id)
    sql = "SELECT * FROM action_audit" + (f" WHERE {' AND '.join(where)}" if where else "")
    return con.execute(sql + f" ORDER BY audit_at, action_id LIMIT {int(limit)}", params).df()


def activity_name(action_type: str) -> str:
    return f"{ACTIVITY_PREFIX}{action_type}"


def add_timeline_events(con: duckdb.DuckDBPyConnection, delivered: Iterable[dict[str, Any]]) -> int:
    """Write delivered actions as events of their cases (inside the caller's transaction).

    The event time is the decision clock plus the delay until delivery, so actions decided against
    a fixed "now" (the demo, replays) land right after it on the case timeline.
    """
    from ingest.loader import ensure_source, insert_events
    from ingest.store import bump_data_version

    rows = []
    for a in delivered:
        created, decided, at = a["created_at"], a["decided_at"], a["delivered_at"]
        ts = decided + max(at - created, timedelta(0))
        rows.append({
            "case_id": a["case_id"], "activity": activity_name(a["action_type"]), "ts": ts, "start_ts": None,
            "lifecycle": "complete", "resource": a["actor"], "record_id": f"action:{a['action_id']}",
            "position": int(a["action_id"]),
            "attrs": json.dumps({"action_id": a["action_id"], "rule": a.get("rule"), "kind": a["kind"],
                                 "step": a.get("step"), "status": "delivered", "delivered_at": str(at)}),
        })
    if not rows:
        return 0
    sid = ensure_source(con, SOURCE, "processlens")
    df = pd.DataFrame(rows)
    known = {r[0] for r in con.execute(
        "SELECT record_id FROM events WHERE source_id = ? AND record_id IN (SELECT unnest(?::VARCHAR[]))",
        [sid, list(df["record_id"])],
    ).fetchall()}
    df = df[~df["record_id"].isin(known)]
    exists = {r[0] for r in con.execute("SELECT case_id FROM cases WHERE case_id IN (SELECT unnest(?::VARCHAR[]))",
                                        [list(df["case_id"])]).fetchall()}
    df = df[df["case_id"].isin(exists)]  # a manual action on an unknown case id gets no timeline event
    if df.empty:
        return 0
    run_id = con.execute("SELECT coalesce(max(run_id), 0) + 1 FROM ingest_runs").fetchone()[0]
    now = now_utc()
    con.execute("SELECT 1").fetchall()  # finish pending results: register() refuses to run beside one
    con.register("_pl_action_events_df", df)
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE _pl_action_events AS SELECT case_id, activity, ts::TIMESTAMP AS ts, "
                    "start_ts::TIMESTAMP AS start_ts, lifecycle, resource, record_id, position::BIGINT AS position, "
                    "attrs::JSON AS attrs FROM _pl_action_events_df")
        n = insert_events(con, "_pl_action_events", sid, run_id)
    finally:
        con.unregister("_pl_action_events_df")
        con.execute("DROP TABLE IF EXISTS _pl_action_events")
    con.execute(
        "INSERT INTO ingest_runs (run_id, job, source_id, started_at, ended_at, status, rows_read, rows_loaded) "
        "VALUES (?, 'coordinator', ?, ?, ?, 'succeeded', ?, ?)",
        [run_id, sid, now, now, n, n],
    )
    bump_data_version(con)
    return n

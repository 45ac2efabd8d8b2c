"""Guess which columns hold the case, activity, timestamp and resource (as Disco's import does)."""

from __future__ import annotations

import re

import duckdb

from ingest.timestamps import detect_format, quote_ident

NAME_HINTS: dict[str, list[str]] = {
    "case": ["case:concept:name", "case id", "caseid", "case_id", "case", "case number", "order id", "order_id",
             "ticket id", "ticket_id", "process instance", "instance", "trace", "id"],
    "activity": ["concept:name", "activity", "activity name", "activity_name", "event", "event name", "task",
                 "action", "operation", "status", "step", "state"],
    "timestamp": ["time:timestamp", "timestamp", "complete timestamp", "end timestamp", "end time", "endtime",
                  "completed", "end", "time", "datetime", "date", "event time", "created_at"],
    "start_timestamp": ["start_timestamp", "start timestamp", "start time", "starttime", "start", "started_at"],
    "resource": ["org:resource", "resource", "user", "agent", "performer", "employee", "owner", "assignee", "org:group"],
    "lifecycle": ["lifecycle:transition", "lifecycle", "transition", "event type"],
}


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-]+", " ", name.strip().lower())


def by_name(columns: list[str], role: str, taken: set[str]) -> str | None:
    normalised = {_norm(c): c for c in columns if c not in taken}
    for hint in NAME_HINTS[role]:
        if _norm(hint) in normalised:
            return normalised[_norm(hint)]
    return None


def guess_mapping(con: duckdb.DuckDBPyConnection, relation: str, columns: dict[str, str]) -> dict[str, str]:
    """Return ``{role: column}`` for the roles we can guess; ``case/activity/timestamp`` when possible.

    Names first (XES-style and common export names), then values: a column whose values parse as
    timestamps; a case column has repeated values with several events each; an activity column has
    few distinct values.
    """
    names = list(columns)
    taken: set[str] = set()
    found: dict[str, str] = {}
    for role in ["timestamp", "start_timestamp", "case", "activity", "resource", "lifecycle"]:
        col = by_name(names, role, taken)
        if col:
            found[role] = col
            taken.add(col)
    if "timestamp" not in found:
        for col in names:
            if col in taken:
                continue
            sample = [r[0] for r in con.execute(f"SELECT CAST({quote_ident(col)} AS VARCHAR) FROM {relation} LIMIT 200").fetchall()]
            if detect_format(con, sample) and columns[col].upper() not in {"BIGINT", "INTEGER", "DOUBLE"}:
                found["timestamp"] = col
                taken.add(col)
                break
    if "case" not in found or "activity" not in found:
        stats = {}
        for col in names:
            if col in taken:
                continue
            total, distinct = con.execute(
                f"SELECT count({quote_ident(col)}), count(DISTINCT {quote_ident(col)}) FROM (SELECT * FROM {relation} LIMIT 50000)"
            ).fetchone()
            if total:
                stats[col] = (total, distinct)
        if "activity" not in found:
            cands = [c for c, (t, d) in stats.items() if 1 < d <= max(2, min(200, t // 3)) and columns[c].upper() == "VARCHAR"]
            if cands:
                found["activity"] = min(cands, key=lambda c: stats[c][1])
                taken.add(found["activity"])
        if "case" not in found:
            cands = [c for c, (t, d) in stats.items() if c not in taken and 1 < d < t]
            if cands:
                found["case"] = max(cands, key=lambda c: stats[c][1])
    return found

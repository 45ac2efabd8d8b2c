"""Guess which columns hold the case, activity, timestamp and resource (as Disco's import does).

Names first (XES keys and the names common exports use), then values: a timestamp column parses
as timestamps; an activity column has few distinct text values, each repeated; a case column has
values that repeat a few times (several events per case) and many distinct values.
"""

from __future__ import annotations

import re

import duckdb

from ingest.timestamps import detect_format, quote_ident

NAME_HINTS: dict[str, list[str]] = {
    "case": ["case:concept:name", "case id", "caseid", "case", "case number", "case no", "case key",
             "order id", "order number", "order no", "order", "ticket id", "ticket number", "ticket", "incident id",
             "process instance", "process instance id", "instance id", "instance", "trace id", "trace", "id"],
    "activity": ["concept:name", "activity", "activity name", "event", "event name", "task", "task name",
                 "action", "operation", "status", "step", "state", "stage", "milestone"],
    "timestamp": ["time:timestamp", "timestamp", "complete timestamp", "completion timestamp", "end timestamp",
                  "end time", "endtime", "end date", "completed", "completed at", "completion time", "finished",
                  "finished at", "done at", "end", "event time", "time", "datetime", "date time", "date",
                  "created at", "changed at", "occurred at"],
    "start_timestamp": ["start timestamp", "start time", "starttime", "start date", "start", "started",
                        "started at", "begin", "begin time"],
    "resource": ["org:resource", "resource", "user", "user name", "username", "agent", "performer", "employee",
                 "owner", "assignee", "executed by", "changed by", "done by", "who", "org:group", "role"],
    "lifecycle": ["lifecycle:transition", "lifecycle", "transition", "event type"],
}
ROLE_ORDER = ["timestamp", "start_timestamp", "case", "activity", "resource", "lifecycle"]
NUMERIC = {"BIGINT", "INTEGER", "DOUBLE", "FLOAT", "HUGEINT", "SMALLINT", "TINYINT", "UBIGINT", "UINTEGER"}
SAMPLE_ROWS = 50_000


def _norm(name: str) -> str:
    name = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name.strip())  # camelCase -> camel case
    return re.sub(r"[\s_\-.]+", " ", name.lower()).strip()


def by_name(columns: list[str], role: str, taken: set[str]) -> str | None:
    """The first column whose normalised name is a known name for ``role``."""
    normalised: dict[str, str] = {}
    for c in columns:
        if c not in taken:
            normalised.setdefault(_norm(c), c)
    for hint in NAME_HINTS[role]:
        if _norm(hint) in normalised:
            return normalised[_norm(hint)]
    return None


def is_temporal(con: duckdb.DuckDBPyConnection, relation: str, column: str, ctype: str, share: float = 0.9) -> bool:
    """Typed timestamp/date columns, or text of which at least ``share`` of a sample parses."""
    t = ctype.upper()
    if t.startswith("TIMESTAMP") or t == "DATE":
        return True
    if t != "VARCHAR":
        return False
    sample = [r[0] for r in con.execute(
        f"SELECT {quote_ident(column)} FROM {relation} WHERE {quote_ident(column)} IS NOT NULL LIMIT 500"
    ).fetchall()]
    return bool(sample) and parsed_share(con, sample) >= share


def parsed_share(con: duckdb.DuckDBPyConnection, sample: list[str]) -> float:
    """Share of ``sample`` that parses with the best detected timestamp format."""
    from ingest.timestamps import parse_expr

    fmt = detect_format(con, sample, allow_epoch=False)
    if fmt is None:
        return 0.0
    ok = con.execute(f"SELECT count({parse_expr('v', fmt)}) FROM (SELECT unnest(?::VARCHAR[]) AS v)",
                     [sample]).fetchall()[0][0]
    return ok / len(sample)


def guess_mapping(con: duckdb.DuckDBPyConnection, relation: str, columns: dict[str, str],
                  fixed: dict[str, str] | None = None) -> dict[str, str]:
    """Return ``{role: column}`` for the roles that can be guessed.

    ``fixed`` holds roles the user named; they are kept and their columns are not reused.
    """
    fixed = dict(fixed or {})
    names = list(columns)
    taken: set[str] = set(fixed.values())
    found: dict[str, str] = {}
    for role in ROLE_ORDER:
        if role in fixed:
            continue
        col = by_name(names, role, taken)
        if col and role in ("timestamp", "start_timestamp") and not is_temporal(con, relation, col, columns[col], share=0.01):
            col = None  # named like a time but holds something else
        if col:
            found[role] = col
            taken.add(col)
    roles = {**found, **fixed}
    if "timestamp" not in roles:
        temporal = [c for c in names if c not in taken and is_temporal(con, relation, c, columns[c])]
        if temporal:
            found["timestamp"] = temporal[-1] if len(temporal) > 1 and "start_timestamp" not in roles else temporal[0]
            taken.add(found["timestamp"])
            if len(temporal) == 2 and "start_timestamp" not in roles and _precedes(con, relation, *temporal):
                found["start_timestamp"] = temporal[0]
                taken.add(temporal[0])
    roles = {**found, **fixed}
    if "case" not in roles or "activity" not in roles:
        stats = _distinct_stats(con, relation, [c for c in names if c not in taken])
        if "activity" not in roles:
            cands = [c for c, (t, d) in stats.items()
                     if 1 < d <= min(500, t // 2) and columns[c].upper() == "VARCHAR"]
            if cands:
                found["activity"] = min(cands, key=lambda c: (stats[c][1], names.index(c)))
                taken.add(found["activity"])
        if "case" not in roles:
            cands = [c for c, (t, d) in stats.items() if c not in taken and 1 < d < t
                     and columns[c].upper() not in {"DOUBLE", "FLOAT"}]
            if cands:
                found["case"] = max(cands, key=lambda c: (stats[c][1], -names.index(c)))
    return found


def _distinct_stats(con: duckdb.DuckDBPyConnection, relation: str, cols: list[str]) -> dict[str, tuple[int, int]]:
    if not cols:
        return {}
    parts = ", ".join(f"count({quote_ident(c)}), count(DISTINCT {quote_ident(c)})" for c in cols)
    row = con.execute(f"SELECT {parts} FROM (SELECT * FROM {relation} LIMIT {SAMPLE_ROWS})").fetchall()[0]
    return {c: (row[2 * i], row[2 * i + 1]) for i, c in enumerate(cols) if row[2 * i]}


def _precedes(con: duckdb.DuckDBPyConnection, relation: str, first: str, second: str) -> bool:
    """True when ``first`` is never after ``second`` in the sample (a start/end pair)."""
    from ingest.timestamps import to_utc_expr

    types = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()}
    fmts = {}
    for c in (first, second):
        if types[c].upper() == "VARCHAR":
            sample = [r[0] for r in con.execute(
                f"SELECT {quote_ident(c)} FROM {relation} WHERE {quote_ident(c)} IS NOT NULL LIMIT 200").fetchall()]
            fmts[c] = detect_format(con, sample, allow_epoch=False)
        else:
            fmts[c] = None
    a = to_utc_expr(f"r.{quote_ident(first)}", types[first], fmts[first])
    b = to_utc_expr(f"r.{quote_ident(second)}", types[second], fmts[second])
    total, ok = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE {a} <= {b}) FROM (SELECT * FROM {relation} LIMIT {SAMPLE_ROWS}) r"
    ).fetchall()[0]
    return total > 0 and ok == total

"""Named SQL over the coordinator's tables (``ingest/migrations/0003_coordinator.sql``).

Every function takes an open connection and runs inside the caller's transaction; none commits.
Times are naive UTC datetimes.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pandas as pd

ACTION_COLUMNS = (
    "action_id", "idempotency_key", "origin", "rule", "actor", "kind", "action_type", "channel", "case_id", "step",
    "reason", "target", "payload", "payload_sha256", "status", "attempts", "dead_after", "next_attempt_at",
    "lease_owner", "lease_expires_at", "decided_at", "created_at", "delivered_at", "last_error", "last_status_code",
    "approved_by", "approved_at", "details",
)
STATUSES = ("awaiting_approval", "pending", "delivered", "dead", "refused", "rejected")


def now_utc() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def new_key() -> str:
    return uuid.uuid4().hex


def _rows(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    cols = [d[0] for d in cur.description]
    out = []
    for row in cur.fetchall():
        rec = dict(zip(cols, row, strict=True))
        for key in ("target", "details"):
            if isinstance(rec.get(key), str):
                rec[key] = json.loads(rec[key])
        out.append(rec)
    return out


# -- writing actions ------------------------------------------------------------------------------
def insert_action(con: duckdb.DuckDBPyConnection, row: dict[str, Any]) -> int:
    """Insert one action (keys of :data:`ACTION_COLUMNS` minus the defaults); returns its id."""
    action_id = con.execute("SELECT nextval('action_id_seq')").fetchone()[0]
    row = {**row, "action_id": action_id}
    row.setdefault("idempotency_key", new_key())
    row["payload_sha256"] = sha256(row["payload"])
    for key in ("target", "details"):
        row[key] = json.dumps(row.get(key) or {}, default=str, sort_keys=True)
    cols = [c for c in ACTION_COLUMNS if c in row]
    con.execute(
        f"INSERT INTO actions ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})", [row[c] for c in cols]
    )
    return action_id


def insert_actions(con: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]]) -> list[int]:
    """Insert many actions in one statement (same columns as :func:`insert_action`); returns ids in order."""
    if not rows:
        return []
    ids = [r[0] for r in con.execute("SELECT nextval('action_id_seq') FROM range(?)", [len(rows)]).fetchall()]
    prepared = []
    for action_id, row in zip(ids, rows, strict=True):
        row = {**row, "action_id": action_id}
        row.setdefault("idempotency_key", new_key())
        row["payload_sha256"] = sha256(row["payload"])
        for key in ("target", "details"):
            row[key] = json.dumps(row.get(key) or {}, default=str, sort_keys=True)
        prepared.append(row)
    cols = [c for c in ACTION_COLUMNS if c in prepared[0]]
    df = pd.DataFrame([{c: r.get(c) for c in cols} for r in prepared], columns=cols)
    _insert_df(con, "actions", df, casts={"target": "JSON", "details": "JSON"})
    return ids


def _insert_df(con: duckdb.DuckDBPyConnection, table: str, df: pd.DataFrame, casts: dict[str, str] | None = None) -> None:
    """INSERT the rows of a DataFrame by column name (types cast by DuckDB)."""
    name = f"_pl_{table}_rows"
    con.execute("SELECT 1").fetchall()  # register() refuses to run beside an unfinished result
    con.register(name, df)
    try:
        sel = ", ".join(f"CAST({c} AS {casts[c]})" if casts and c in casts else c for c in df.columns)
        con.execute(f"INSERT INTO {table} ({', '.join(df.columns)}) SELECT {sel} FROM {name}")
    finally:
        con.unregister(name)


def record_results(con: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]]) -> None:
    """Set-based recording of a batch of attempts: one row per action with action_id, attempt, worker,
    started_at, ended_at, outcome, status_code, error, duration_ms, new_status, next_attempt_at."""
    if not rows:
        return
    df = pd.DataFrame(rows)
    att = df[["action_id", "attempt", "worker", "started_at", "ended_at", "outcome", "status_code", "error", "duration_ms"]]
    _insert_df(con, "action_attempts", att.astype({"status_code": "Int64"}))
    name = "_pl_results"
    con.execute("SELECT 1").fetchall()
    con.register(name, df.astype({"status_code": "Int64"}))
    try:
        con.execute(
            f"""
            UPDATE actions SET status = r.new_status, attempts = actions.attempts + 1,
                   delivered_at = CASE WHEN r.outcome = 'delivered' THEN r.ended_at ELSE actions.delivered_at END,
                   last_status_code = r.status_code,
                   last_error = CASE WHEN r.outcome = 'delivered' THEN NULL ELSE r.error END,
                   next_attempt_at = coalesce(r.next_attempt_at, actions.next_attempt_at),
                   lease_owner = NULL, lease_expires_at = NULL
            FROM {name} r WHERE actions.action_id = r.action_id
            """
        )
    finally:
        con.unregister(name)


def cases_in_cooldown(con: duckdb.DuckDBPyConnection, rule: str, decided_at: datetime, seconds: float) -> set[str]:
    """Cases this rule acted on (any status but rejected) within ``seconds`` before ``decided_at`` (or later)."""
    since = decided_at - timedelta(seconds=seconds)
    return {r[0] for r in con.execute(
        "SELECT DISTINCT case_id FROM actions WHERE rule = ? AND decided_at > ? AND status <> 'rejected'", [rule, since]
    ).fetchall()}


def created_since(con: duckdb.DuckDBPyConnection, rule: str, since: datetime) -> int:
    """Actions the rule created since ``since`` (wall clock): the per-hour rate limit."""
    return con.execute("SELECT count(*) FROM actions WHERE rule = ? AND created_at >= ?", [rule, since]).fetchone()[0]


# -- the dispatcher's side ----------------------------------------------------------------------
def claim_due(con: duckdb.DuckDBPyConnection, worker: str, lease_seconds: float, limit: int,
              now: datetime | None = None, only: list[int] | None = None,
              exclude: set[int] | None = None) -> list[dict[str, Any]]:
    """Lease up to ``limit`` due actions to ``worker``: pending, due, not leased by a live worker,
    and not of a disabled rule. Atomic because DuckDB has a single writer."""
    now = now or now_utc()
    expires = now + timedelta(seconds=lease_seconds)
    only_sql = f"AND a.action_id IN ({', '.join(str(int(i)) for i in only)})" if only else ""
    if exclude:
        only_sql += f" AND a.action_id NOT IN ({', '.join(str(int(i)) for i in exclude)})"
    cur = con.execute(
        f"""
        UPDATE actions SET lease_owner = $worker, lease_expires_at = $expires
        WHERE action_id IN (
            SELECT a.action_id FROM actions a LEFT JOIN rule_state r ON r.rule = a.rule
            WHERE a.status = 'pending' AND a.next_attempt_at <= $now
              AND (a.lease_owner IS NULL OR a.lease_expires_at < $now)
              AND coalesce(r.enabled, TRUE) {only_sql}
            ORDER BY a.next_attempt_at, a.action_id
            LIMIT $limit)
        RETURNING *
        """,
        {"worker": worker, "expires": expires, "now": now, "limit": limit},
    )
    return sorted(_rows(cur), key=lambda r: r["action_id"])


def extend_leases(con: duckdb.DuckDBPyConnection, worker: str, ids: list[int], lease_seconds: float) -> set[int]:
    """Heartbeat: push the lease of actions still held by ``worker``; returns the ids still held."""
    if not ids:
        return set()
    now = now_utc()
    cur = con.execute(
        f"UPDATE actions SET lease_expires_at = ? WHERE lease_owner = ? AND status = 'pending' "
        f"AND action_id IN ({', '.join(str(int(i)) for i in ids)}) RETURNING action_id",
        [now + timedelta(seconds=lease_seconds), worker],
    )
    return {r[0] for r in cur.fetchall()}


def heartbeat_worker(con: duckdb.DuckDBPyConnection, worker: str, host: str, pid: int, lease_seconds: float,
                     stopped: bool = False) -> None:
    now = now_utc()
    con.execute(
        """
        INSERT INTO coordinator_leases (worker, host, pid, started_at, heartbeat_at, expires_at, stopped_at)
        VALUES ($w, $h, $p, $now, $now, $exp, $stop)
        ON CONFLICT (worker) DO UPDATE SET heartbeat_at = $now, expires_at = $exp, stopped_at = $stop
        """,
        {"w": worker, "h": host, "p": pid, "now": now, "exp": now + timedelta(seconds=lease_seconds),
         "stop": now if stopped else None},
    )


def record_attempt(con: duckdb.DuckDBPyConnection, action_id: int, attempt: int, worker: str, started_at: datetime,
                   ended_at: datetime, outcome: str, status_code: int | None, error: str | None, duration_ms: float) -> None:
    con.execute(
        "INSERT INTO action_attempts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [action_id, attempt, worker, started_at, ended_at, outcome, status_code, error, duration_ms],
    )


def mark_delivered(con: duckdb.DuckDBPyConnection, action_id: int, at: datetime, status_code: int | None) -> None:
    con.execute(
        "UPDATE actions SET status = 'delivered', attempts = attempts + 1, delivered_at = ?, last_status_code = ?, "
        "last_error = NULL, lease_owner = NULL, lease_expires_at = NULL WHERE action_id = ?",
        [at, status_code, action_id],
    )


def mark_failed(con: duckdb.DuckDBPyConnection, action_id: int, error: str, status_code: int | None,
                next_attempt_at: datetime | None, status: str = "pending") -> None:
    """A failed attempt: reschedule (``next_attempt_at``) or end in ``dead``/``refused``."""
    con.execute(
        "UPDATE actions SET status = ?, attempts = attempts + 1, last_error = ?, last_status_code = ?, "
        "next_attempt_at = coalesce(?, next_attempt_at), lease_owner = NULL, lease_expires_at = NULL WHERE action_id = ?",
        [status, error, status_code, next_attempt_at, action_id],
    )


def get_action(con: duckdb.DuckDBPyConnection, action_id: int) -> dict[str, Any] | None:
    rows = _rows(con.execute("SELECT * FROM actions WHERE action_id = ?", [action_id]))
    return rows[0] if rows else None


def requeue(con: duckdb.DuckDBPyConnection, action_id: int, max_attempts: int) -> None:
    """Operator retry of a dead (or failed) action: due now, with a fresh attempt budget."""
    con.execute(
        "UPDATE actions SET status = 'pending', next_attempt_at = ?, dead_after = attempts + ?, lease_owner = NULL, "
        "lease_expires_at = NULL WHERE action_id = ?",
        [now_utc(), max_attempts, action_id],
    )


def set_approval(con: duckdb.DuckDBPyConnection, action_id: int, approved: bool, actor: str) -> None:
    con.execute(
        "UPDATE actions SET status = ?, approved_by = ?, approved_at = ?, next_attempt_at = ? WHERE action_id = ?",
        ["pending" if approved else "rejected", actor, now_utc(), now_utc(), action_id],
    )


# -- rule state ------------------------------------------------------------------------------------
def rule_states(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, Any]]:
    return {r["rule"]: r for r in _rows(con.execute("SELECT * FROM rule_state"))}


def upsert_rule_state(con: duckdb.DuckDBPyConnection, rule: str, **values: Any) -> None:
    """Set columns of a rule's state row, creating it when missing."""
    values["updated_at"] = now_utc()
    cols = list(values)
    con.execute(
        f"INSERT INTO rule_state (rule, {', '.join(cols)}) VALUES (?, {', '.join('?' for _ in cols)}) "
        f"ON CONFLICT (rule) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in cols)}",
        [rule, *values.values()],
    )


def bump_failures(con: duckdb.DuckDBPyConnection, rule: str) -> int:
    """One more consecutive failure for the rule; returns the new count."""
    con.execute(
        "INSERT INTO rule_state (rule, consecutive_failures, updated_at) VALUES (?, 1, ?) ON CONFLICT (rule) DO UPDATE "
        "SET consecutive_failures = rule_state.consecutive_failures + 1, updated_at = excluded.updated_at",
        [rule, now_utc()],
    )
    return con.execute("SELECT consecutive_failures FROM rule_state WHERE rule = ?", [rule]).fetchone()[0]


# -- reading -------------------------------------------------------------------------------------
def list_actions(con: duckdb.DuckDBPyConnection, status: str | None = None, rule: str | None = None,
                 case_id: str | None = None, limit: int | None = 1000) -> pd.DataFrame:
    """Actions, newest first, optionally filtered; ``target`` and ``details`` as JSON text."""
    where, params = [], []
    for col, val in (("status", status), ("rule", rule), ("case_id", case_id)):
        if val is not None:
            where.append(f"{col} = ?")
            params.append(val)
    sql = ("SELECT action_id, created_at, decided_at, origin, rule, actor, kind, action_type, channel, case_id, step, "
           "reason, status, attempts, dead_after, next_attempt_at, delivered_at, last_status_code, last_error, "
           "lease_owner, lease_expires_at, approved_by, idempotency_key, payload_sha256, target, details FROM actions"
           + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY action_id DESC"
           + (f" LIMIT {int(limit)}" if limit else ""))
    return con.execute(sql, params).df()


def attempts_of(con: duckdb.DuckDBPyConnection, action_id: int) -> pd.DataFrame:
    return con.execute("SELECT * FROM action_attempts WHERE action_id = ? ORDER BY attempt", [action_id]).df()


def status_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return dict(con.execute("SELECT status, count(*) FROM actions GROUP BY status ORDER BY status").fetchall())

"""Operator actions: dispatch by hand for one case or a selection, approve, reject, retry, enable rules.

The caller (CLI, dashboard) checks the user's role; these functions record who did it. Manual
actions use the same payloads and targets as rules — an operator picks a rule whose action and
target to reuse (or the first rule with that action type).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import duckdb
import pandas as pd

from coordinator import audit, outbox
from coordinator.engine import evaluation_now
from coordinator.payload import build_action
from coordinator.rules import ACTIONS, CoordinatorSettings, Rule, load_rules
from processlens.errors import ActionError


def _pick_rule(settings: Any, action: str, rule: str | None) -> Rule:
    rules = load_rules(settings)
    if rule is not None:
        found = [r for r in rules if r.name == rule]
        if not found:
            raise ActionError(f"no rule named {rule!r} to take the target from",
                              hint=f"rules: {', '.join(r.name for r in rules) or 'none'}")
        return found[0]
    if action not in ACTIONS:
        raise ActionError(f"unknown action {action!r}", hint=f"actions: {', '.join(ACTIONS)}")
    found = [r for r in rules if r.action == action]
    if not found:
        raise ActionError(f"no rule with do = {action!r} defines a target for this action",
                          hint=f"add a [rules.NAME] with do = \"{action}\" (mode = \"dry_run\" keeps it from firing by itself)")
    return found[0]


def _case_context(con: duckdb.DuckDBPyConnection, case_ids: list[str], settings: Any, now: datetime) -> pd.DataFrame:
    """Per case: step, owner, waited... from the conformance engine when it knows the case, else the last event."""
    ids = [str(c) for c in case_ids]
    base = con.execute(
        f"""
        SELECT case_id, arg_max(activity, (ts, event_id)) AS last_activity, max(ts) AS last_ts,
               arg_max(source, (ts, event_id)) AS source
        FROM event_log WHERE case_id IN (SELECT unnest(?::VARCHAR[])) AND source <> '{audit.SOURCE}'
        GROUP BY case_id
        """,
        [ids],
    ).df()
    present = set(base["case_id"])
    base = base.set_index("case_id").reindex([i for i in ids if i in present]).reset_index()
    base["waited_seconds"] = (pd.Timestamp(now) - pd.to_datetime(base["last_ts"])).dt.total_seconds()
    base["step"] = base["last_activity"]
    try:
        import models

        model = models.model_from_settings(settings, CoordinatorSettings.from_settings(settings).model)
        stuck = models.stuck(con, model, now)
        stuck = stuck[stuck["case_id"].astype(str).isin(ids)]
        if len(stuck):
            base = base.drop(columns=["step"]).merge(
                stuck[["case_id", "step", "owner", "sla_seconds", "normal_seconds", "reasons"]], on="case_id", how="left")
            base["step"] = base["step"].fillna(base["last_activity"])
    except Exception:  # no model configured, or engine not available: the last event is context enough
        pass
    return base


def preview(con: duckdb.DuckDBPyConnection, case_ids: list[str], action: str, settings: Any,
            rule: str | None = None, now: datetime | None = None) -> dict[str, Any]:
    """What a manual dispatch would do: counts of known cases, unknown ids, recent actions on them."""
    r = _pick_rule(settings, action, rule)
    now = evaluation_now(settings, now)
    ids = list(dict.fromkeys(str(c) for c in case_ids))
    known = {x[0] for x in con.execute("SELECT case_id FROM cases WHERE case_id IN (SELECT unnest(?::VARCHAR[]))",
                                       [ids]).fetchall()}
    recent = {x[0] for x in con.execute(
        "SELECT DISTINCT case_id FROM actions WHERE case_id IN (SELECT unnest(?::VARCHAR[])) AND decided_at > ?",
        [ids, now - timedelta(days=1)]).fetchall()}
    return {"action": r.action, "rule": r.name, "cases": len([i for i in ids if i in known]),
            "unknown": [i for i in ids if i not in known], "acted_on_in_last_day": len(recent & known)}


def enqueue_manual(con: duckdb.DuckDBPyConnection, case_ids: list[str], action: str, actor: str, settings: Any, *,
                   rule: str | None = None, text: str | None = None, now: datetime | None = None,
                   progress: Any = None) -> list[int]:
    """Queue one action per known case (unknown ids are refused with a clear error); returns action ids."""
    r = _pick_rule(settings, action, rule)
    cs = CoordinatorSettings.from_settings(settings)
    now = evaluation_now(settings, now)
    ids = list(dict.fromkeys(str(c) for c in case_ids))
    if not ids:
        raise ActionError("no cases selected", hint="select at least one case")
    ctx = _case_context(con, ids, settings, now)
    missing = sorted(set(ids) - set(ctx["case_id"].astype(str)))
    if missing:
        raise ActionError(f"unknown case id(s): {', '.join(missing[:10])}" + (" …" if len(missing) > 10 else ""),
                          hint="check the ids against the store (processlens mine cases)")
    rows = []
    for i, match in enumerate(ctx.to_dict(orient="records")):
        rows.append(build_action(match=match, action=r.action, target=r.target, kind="manual", rule=None, actor=actor,
                                 origin="manual", mode="automatic", cs=cs, now=now, text=text or r.text,
                                 extra=r.payload, reason=f"requested by {actor}"))
        if progress:
            progress(i + 1, len(ctx))
    con.execute("BEGIN TRANSACTION")
    try:
        ids = outbox.insert_actions(con, rows)
        audit.write_many(con, [{
            "actor": actor, "event": "refused" if row["status"] == "refused" else "created", "action_id": action_id,
            "case_id": row["case_id"], "payload_sha256": outbox.sha256(row["payload"]),
            "detail": row["last_error"] or f"manual {r.action} (target of rule {r.name})",
        } for action_id, row in zip(ids, rows, strict=True)])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return ids


def _one(con: duckdb.DuckDBPyConnection, action_id: int) -> dict[str, Any]:
    a = outbox.get_action(con, action_id)
    if a is None:
        raise ActionError(f"no action with id {action_id}", hint="list them with: processlens actions list")
    return a


def retry(con: duckdb.DuckDBPyConnection, action_id: int, actor: str, settings: Any) -> dict[str, Any]:
    """Put a dead-lettered (or refused-by-receiver) action back in the queue with a fresh attempt budget."""
    a = _one(con, action_id)
    if a["status"] not in ("dead", "pending"):
        raise ActionError(f"action {action_id} is {a['status']}; only dead or pending actions can be retried",
                          hint="delivered actions are done; refused ones need their target fixed and a new action")
    cs = CoordinatorSettings.from_settings(settings)
    con.execute("BEGIN TRANSACTION")
    outbox.requeue(con, action_id, cs.max_attempts)
    audit.write(con, actor, "retried", action_id=action_id, rule=a["rule"], case_id=a["case_id"],
                payload_sha256=a["payload_sha256"], detail=f"after {a['attempts']} attempts; last error: {a['last_error']}")
    con.execute("COMMIT")
    return outbox.get_action(con, action_id)


def approve(con: duckdb.DuckDBPyConnection, action_ids: list[int], actor: str, approved: bool = True) -> int:
    """Approve (or reject) actions awaiting approval; returns how many changed."""
    n = 0
    con.execute("BEGIN TRANSACTION")
    try:
        for action_id in action_ids:
            a = _one(con, action_id)
            if a["status"] != "awaiting_approval":
                continue
            outbox.set_approval(con, action_id, approved, actor)
            audit.write(con, actor, "approved" if approved else "rejected", action_id=action_id, rule=a["rule"],
                        case_id=a["case_id"], payload_sha256=a["payload_sha256"])
            n += 1
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return n


def set_rule_enabled(con: duckdb.DuckDBPyConnection, rule: str, enabled: bool, actor: str, reason: str | None = None) -> None:
    """Enable a rule (clearing its failure count) or disable it with a reason."""
    con.execute("BEGIN TRANSACTION")
    if enabled:
        outbox.upsert_rule_state(con, rule, enabled=True, disabled_reason=None, disabled_at=None, consecutive_failures=0)
    else:
        outbox.upsert_rule_state(con, rule, enabled=False, disabled_reason=reason or f"disabled by {actor}",
                                 disabled_at=outbox.now_utc())
    audit.write(con, actor, "rule_enabled" if enabled else "rule_disabled", rule=rule, detail=reason)
    con.execute("COMMIT")

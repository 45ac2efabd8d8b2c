"""At-least-once delivery of the outbox, safe with several coordinators and crashes.

One dispatch round: open the store, **claim** a batch of due actions with a lease (owner +
expiry), close the store; **send** them over the network (no store held, a heartbeat thread
extends the leases while requests run); reopen and **record** every attempt. DuckDB admits one
writing process at a time, so claims are atomic across processes; an action leased by a live
worker is never claimed by another, and the actions of a worker killed mid-send are claimed again
once its lease expires (the receiver sees the same ``Idempotency-Key`` if the first send had got
through). A worker never sends an action whose lease it may have lost.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from coordinator import audit, outbox
from coordinator.channels import SendResult, make_client, send
from coordinator.rules import CoordinatorSettings, Rule, load_rules
from ingest.store import open_store

log = logging.getLogger("processlens.coordinator")
LEASE_MARGIN = 0.2  # share of the lease kept in reserve: never start a send that might outlive it


@dataclass
class DispatchStats:
    claimed: int = 0
    delivered: int = 0
    failed: int = 0
    dead: int = 0
    refused: int = 0
    skipped_lease_lost: int = 0
    rules_disabled: list[str] = field(default_factory=list)
    action_ids: list[int] = field(default_factory=list, repr=False)

    def add(self, other: DispatchStats) -> None:
        for k in ("claimed", "delivered", "failed", "dead", "refused", "skipped_lease_lost"):
            setattr(self, k, getattr(self, k) + getattr(other, k))
        self.rules_disabled += other.rules_disabled

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k != "action_ids"}


def backoff_seconds(attempt: int, cs: CoordinatorSettings, retry_after: float | None = None,
                    rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter ("equal jitter"): half fixed, half random, capped."""
    rng = rng or random
    base = min(cs.backoff_max, cs.backoff_base * (2 ** max(attempt - 1, 0)))
    delay = base / 2 + rng.random() * base / 2
    if retry_after is not None:
        delay = max(delay, min(retry_after, cs.backoff_max))
    return delay


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Dispatcher:
    """Delivers due actions of one store. Thread-safe store access; one instance per process."""

    def __init__(self, db_path: str | Path, cs: CoordinatorSettings, rules: list[Rule] | None = None,
                 worker: str | None = None, store_timeout: float | None = None) -> None:
        self.db_path = Path(db_path)
        self.cs = cs
        self.rules = {r.name: r for r in (rules or [])}
        self.worker = worker or worker_name()
        self.store_timeout = store_timeout
        self._lock = threading.Lock()
        self._client = make_client(cs)
        #: called after each send with (action, result): benchmarks and tests observe progress here
        self.on_sent: Callable[[dict[str, Any], SendResult], None] | None = None

    @classmethod
    def from_settings(cls, settings: Any, **kw: Any) -> Dispatcher:
        return cls(settings.db_path, CoordinatorSettings.from_settings(settings), load_rules(settings), **kw)

    def close(self) -> None:
        self._client.close()

    def _store(self):
        return open_store(self.db_path, timeout=self.store_timeout)

    # -- one round -----------------------------------------------------------------------------
    def _claim_in(self, con: Any, limit: int | None, only: list[int] | None,
                  exclude: set[int] | None) -> list[dict[str, Any]]:
        outbox.heartbeat_worker(con, self.worker, socket.gethostname(), os.getpid(), self.cs.lease_seconds)
        return outbox.claim_due(con, self.worker, self.cs.lease_seconds, limit or self.cs.batch_size, only=only,
                                exclude=exclude)

    def claim(self, limit: int | None = None, only: list[int] | None = None,
              exclude: set[int] | None = None) -> list[dict[str, Any]]:
        """Lease a batch of due actions to this worker (one short transaction)."""
        with self._lock, self._store() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                claimed = self._claim_in(con, limit, only, exclude)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return claimed

    def dispatch_round(self, limit: int | None = None, only: list[int] | None = None,
                       exclude: set[int] | None = None) -> DispatchStats:
        """Claim, send and record one batch; returns what happened (claimed = 0: nothing due)."""
        stats = DispatchStats()
        t0 = time.monotonic()
        claimed = self.claim(limit, only, exclude)
        stats.action_ids = [a["action_id"] for a in claimed]
        stats.claimed = len(claimed)
        if claimed:
            self._record(claimed, self._send_batch(claimed, t0), stats)
        return stats

    def _send_batch(self, claimed: list[dict[str, Any]], lease_start: float) -> dict[int, tuple[SendResult, datetime, datetime]]:
        """Send claimed actions concurrently while a heartbeat thread keeps their leases alive.

        ``lease_start`` is the monotonic time taken *before* the claim, so the local idea of when the
        lease ends is never later than the store's.
        """
        lease_until = [lease_start + self.cs.lease_seconds]
        held = {a["action_id"] for a in claimed}
        stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(stop, held, lease_until), daemon=True)
        beat.start()
        results: dict[int, tuple[SendResult, datetime, datetime]] = {}

        def one(action: dict[str, Any]) -> None:
            margin = self.cs.lease_seconds * LEASE_MARGIN
            if action["action_id"] not in held or time.monotonic() + min(self.cs.timeout, margin) > lease_until[0]:
                return  # the lease may be gone: leave the action to whoever holds it next
            started = outbox.now_utc()
            res = send(action, self.cs, self._client)
            results[action["action_id"]] = (res, started, outbox.now_utc())
            if self.on_sent:
                self.on_sent(action, res)

        try:
            with ThreadPoolExecutor(max_workers=min(self.cs.concurrency, len(claimed))) as pool:
                list(pool.map(one, claimed))
        finally:
            stop.set()
            beat.join()
        return results

    def _heartbeat(self, stop: threading.Event, held: set[int], lease_until: list[float]) -> None:
        """Extend the leases every third of their length while the round runs."""
        while not stop.wait(self.cs.lease_seconds / 3):
            t0 = time.monotonic()
            try:
                with self._lock, self._store() as con:
                    con.execute("BEGIN TRANSACTION")
                    still = outbox.extend_leases(con, self.worker, sorted(held), self.cs.lease_seconds)
                    outbox.heartbeat_worker(con, self.worker, socket.gethostname(), os.getpid(), self.cs.lease_seconds)
                    con.execute("COMMIT")
                held.intersection_update(still)
                lease_until[0] = t0 + self.cs.lease_seconds
            except Exception as exc:  # store busy: keep sending only while the old lease lasts
                log.warning("heartbeat failed (%s); sends stop when the lease runs out", type(exc).__name__)

    def _record(self, claimed: list[dict[str, Any]], results: dict[int, tuple[SendResult, datetime, datetime]],
                stats: DispatchStats, claim_next: bool = False,
                exclude: set[int] | None = None) -> list[dict[str, Any]]:
        """Record the attempts of a batch; with ``claim_next`` also lease the next batch in the same
        transaction (one store opening per round instead of two)."""
        stats.skipped_lease_lost += len(claimed) - len(results)
        by_id = {a["action_id"]: a for a in claimed}
        nxt: list[dict[str, Any]] = []
        rows, audits, delivered = [], [], []
        outcomes: dict[str, list[tuple[datetime, bool, str]]] = {}
        for action_id, (res, started, ended) in sorted(results.items()):
            a = by_id[action_id]
            attempt = int(a["attempts"]) + 1
            outcome = "delivered" if res.ok else ("refused" if res.refused else "failed")
            nxt_at = None
            if res.ok:
                status, event = "delivered", "delivered"
                stats.delivered += 1
                delivered.append({**a, "delivered_at": ended})
            else:
                stats.failed += 1
                if res.refused:
                    status, event = "refused", "refused"
                    stats.refused += 1
                elif not res.retryable or attempt >= int(a["dead_after"]):
                    status, event = "dead", "dead_lettered"
                    stats.dead += 1
                else:
                    status, event = "pending", "attempt"
                    nxt_at = ended + timedelta(seconds=backoff_seconds(attempt, self.cs, res.retry_after))
            rows.append({"action_id": action_id, "attempt": attempt, "worker": self.worker, "started_at": started,
                         "ended_at": ended, "outcome": outcome, "status_code": res.status_code, "error": res.error,
                         "duration_ms": res.duration_ms, "new_status": status, "next_attempt_at": nxt_at})
            detail = f"attempt {attempt}: " + (str(res.status_code) if res.ok else str(res.error))
            if nxt_at is not None:
                detail += f"; next at {nxt_at:%Y-%m-%d %H:%M:%S}"
            audits.append({"actor": self.worker, "event": event, "action_id": action_id, "rule": a["rule"],
                           "case_id": a["case_id"], "payload_sha256": a["payload_sha256"], "detail": detail, "at": ended})
            if a["rule"]:
                outcomes.setdefault(a["rule"], []).append((ended, res.ok, res.error or ""))
        with self._lock, self._store() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                outbox.record_results(con, rows)
                audit.write_many(con, audits)
                for rule_name, seq in outcomes.items():
                    self._count_outcomes(con, rule_name, sorted(seq), stats)
                if delivered and self.cs.timeline_events:
                    audit.add_timeline_events(con, delivered)
                if claim_next:
                    nxt = self._claim_in(con, None, None, exclude)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return nxt

    def _count_outcomes(self, con: Any, rule_name: str, seq: list[tuple[datetime, bool, str]],
                        stats: DispatchStats) -> None:
        """Consecutive failures of a rule over this batch (in time order); disable it at the limit."""
        row = con.execute("SELECT consecutive_failures, enabled FROM rule_state WHERE rule = ?", [rule_name]).fetchone()
        count, enabled = (row[0], row[1]) if row else (0, True)
        rule = self.rules.get(rule_name)
        limit = rule.disable_after if rule else 5
        disabled_reason = None
        for _, ok, error in seq:
            count = 0 if ok else count + 1
            if not ok and count >= limit and enabled and disabled_reason is None:
                disabled_reason = f"disabled after {count} consecutive failed deliveries; last error: {error}"
        values: dict[str, Any] = {"consecutive_failures": count}
        if disabled_reason:
            values.update(enabled=False, disabled_reason=disabled_reason, disabled_at=outbox.now_utc())
            audit.write(con, self.worker, "rule_disabled", rule=rule_name, detail=disabled_reason)
            stats.rules_disabled.append(rule_name)
            log.warning("rule %s %s", rule_name, disabled_reason)
        if row is None or count != row[0] or disabled_reason:
            outbox.upsert_rule_state(con, rule_name, **values)

    # -- until nothing is due ----------------------------------------------------------------------
    def drain(self, max_rounds: int | None = None, stop: threading.Event | None = None) -> DispatchStats:
        """Run rounds until nothing is due now. Each action is tried at most once per drain (retries
        wait for the next cycle); recording a batch and claiming the next share one transaction."""
        total = DispatchStats()
        tried: set[int] = set()
        rounds = 0
        t0 = time.monotonic()
        claimed = self.claim(exclude=tried)
        while claimed:
            rounds += 1
            tried.update(a["action_id"] for a in claimed)
            total.claimed += len(claimed)
            results = self._send_batch(claimed, t0)
            more = not (stop and stop.is_set()) and not (max_rounds and rounds >= max_rounds)
            t0 = time.monotonic()
            claimed = self._record(claimed, results, total, claim_next=more, exclude=tried)
        return total

    def stopped(self) -> None:
        """Mark this worker as stopped (its leases were released by recording)."""
        try:
            with self._lock, self._store() as con:
                outbox.heartbeat_worker(con, self.worker, socket.gethostname(), os.getpid(), 0, stopped=True)
        except Exception:
            pass

    def next_due_in(self) -> float | None:
        """Seconds until the next pending action is due (0 if due now), None when nothing is pending."""
        with self._lock, self._store() as con:
            row = con.execute(
                "SELECT min(greatest(next_attempt_at, coalesce(lease_expires_at, next_attempt_at))) FROM actions "
                "WHERE status = 'pending'"
            ).fetchone()
        if row[0] is None:
            return None
        return max((row[0] - outbox.now_utc()).total_seconds(), 0.0)

"""A fast, vectorised order-to-cash event generator that writes straight into a processlens store.

Used by the analytics benchmark (100k .. 10M events) and by tests that need a mid-sized log. It
is not the demo world (that one lives in ``processlens/demo``): it only needs the *shape* of an
order-to-cash log — the demo activities, branches, deviations, several source systems, resources
in teams, case attributes, start timestamps on the warehouse steps and open cases at "now".

Traces are fully determined by ``(n_cases, seed)``; ``now`` only cuts them. Appending is
therefore "move now forward": :func:`append` inserts exactly the events with
``old_now < ts <= new_now`` — new events of running cases and the first events of new ones.

    python bench/synthetic.py --events 1000000 --out /tmp/o2c.duckdb
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

# activity -> (system, team, median wait before it in hours, service minutes or 0)
ACTIVITIES: dict[str, tuple[str, str, float, float]] = {
    "Create Order": ("ERP", "Sales", 0.0, 0),
    "Check Credit": ("ERP", "Finance", 6.0, 0),
    "Approve Order": ("ERP", "Sales", 10.0, 0),
    "Reject Order": ("ERP", "Sales", 12.0, 0),
    "Pick Goods": ("WMS", "Warehouse", 14.0, 25),
    "Pack Goods": ("WMS", "Warehouse", 5.0, 15),
    "Address Invalid": ("WMS", "Warehouse", 2.0, 0),
    "Correct Address": ("ERP", "Customer Service", 8.0, 0),
    "Ship Goods": ("WMS", "Warehouse", 16.0, 0),
    "Create Invoice": ("ERP", "Finance", 7.0, 0),
    "Payment Failed": ("PSP", "Finance", 48.0, 0),
    "Retry Payment": ("PSP", "Finance", 12.0, 0),
    "Payment Received": ("PSP", "Finance", 120.0, 0),
    "Close Order": ("ERP", "Sales", 9.0, 0),
    "Open Ticket": ("Helpdesk", "Customer Service", 20.0, 0),
    "Resolve Ticket": ("Helpdesk", "Customer Service", 18.0, 0),
}
NAMES = list(ACTIVITIES)
AID = {name: i + 1 for i, name in enumerate(NAMES)}
SYSTEMS = ["ERP", "WMS", "PSP", "Helpdesk"]
TEAM_SIZE = {"Sales": 12, "Finance": 10, "Warehouse": 25, "Customer Service": 8}
REGIONS = ["North", "South", "East", "West"]
EPOCH = datetime(2025, 1, 1)
SPAN_DAYS = 365
EVENTS_PER_CASE = 9.07  # measured mean events per case after the cut at "now", used to size a run


@dataclass
class Generated:
    """Events (sorted by case, time) and cases of one generated log."""

    events: pd.DataFrame  # case_key, activity_id, ts, start_ts, resource, source_id
    cases: pd.DataFrame  # case_key, case_id, customer, region, amount
    now: datetime


def _trace(flags: tuple[int, ...]) -> list[str]:
    skip_credit, reject, rework, address, pay_fail, wrong_order, dup_invoice, ticket = flags
    t = ["Create Order"]
    if not skip_credit:
        t.append("Check Credit")
    if reject:
        return t + ["Reject Order"]
    t += ["Approve Order", "Pick Goods", "Pack Goods"]
    t += ["Pick Goods", "Pack Goods"] * rework
    if address:
        t += ["Address Invalid", "Correct Address"]
    ship_invoice = ["Create Invoice", "Ship Goods"] if wrong_order else ["Ship Goods", "Create Invoice"]
    t += ship_invoice
    if ticket:
        t += ["Open Ticket", "Resolve Ticket"]
    if dup_invoice:
        t.append("Create Invoice")
    t += ["Payment Failed", "Retry Payment"] * pay_fail
    return t + ["Payment Received", "Close Order"]


def _flags(rng: np.random.Generator, n: int) -> np.ndarray:
    cols = [
        rng.random(n) < 0.03,  # skipped_credit_check
        rng.random(n) < 0.08,  # reject
        rng.choice(3, n, p=[0.93, 0.055, 0.015]),  # rework loops
        rng.random(n) < 0.08,  # address invalid
        rng.choice(3, n, p=[0.88, 0.1, 0.02]),  # failed payments
        rng.random(n) < 0.03,  # wrong order
        rng.random(n) < 0.02,  # duplicate invoice
        rng.random(n) < 0.05,  # helpdesk ticket
    ]
    return np.stack([np.asarray(c, dtype=np.int8) for c in cols], axis=1)


def generate(n_cases: int, seed: int = 7, now: datetime | None = None) -> Generated:
    """All events with ``ts <= now`` of ``n_cases`` order-to-cash cases (default now: end of the span)."""
    rng = np.random.default_rng(seed)
    now = now or EPOCH + timedelta(days=SPAN_DAYS)
    flags = _flags(rng, n_cases)
    combos, combo_of_case = np.unique(flags, axis=0, return_inverse=True)
    combo_of_case = combo_of_case.reshape(-1)
    traces = [[AID[a] for a in _trace(tuple(int(x) for x in c))] for c in combos]
    lengths = np.array([len(t) for t in traces])
    flat = np.concatenate([np.array(t, dtype=np.int16) for t in traces])
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    case_len = lengths[combo_of_case]
    total = int(case_len.sum())
    case_of_event = np.repeat(np.arange(n_cases), case_len)
    first_of_case = np.concatenate([[0], np.cumsum(case_len)[:-1]])
    seq = np.arange(total) - np.repeat(first_of_case, case_len)
    activity = flat[offsets[combo_of_case][case_of_event] + seq]

    # waits: lognormal around the activity's median, heavier for a slow week and a slow team member
    median_h = np.array([0.0] + [ACTIVITIES[a][2] for a in NAMES])[activity]
    wait = rng.lognormal(mean=np.log(np.maximum(median_h, 1e-3) * 3600.0), sigma=0.8)
    wait[seq == 0] = 0.0
    start = rng.uniform(0, SPAN_DAYS * 86400.0, n_cases)
    offs = np.cumsum(wait)
    offs -= np.repeat(offs[first_of_case], case_len)
    ts_s = np.floor(np.repeat(start, case_len) + offs)
    service_min = np.array([0.0] + [ACTIVITIES[a][3] for a in NAMES])[activity]
    service = np.where(service_min > 0, rng.exponential(np.maximum(service_min, 1) * 60.0), np.nan)

    team_of_act = np.array([""] + [ACTIVITIES[a][1] for a in NAMES], dtype=object)
    system_of_act = np.array([0] + [SYSTEMS.index(ACTIVITIES[a][0]) + 1 for a in NAMES])
    teams = list(TEAM_SIZE)
    team_idx = np.array([-1] + [teams.index(ACTIVITIES[a][1]) for a in NAMES])[activity]
    sizes = np.array([TEAM_SIZE[t] for t in teams])
    member = (rng.zipf(1.6, total) - 1) % sizes[team_idx]
    resource_names = {
        (ti, m): f"{t.lower().replace(' ', '_')}_{m:02d}" for ti, t in enumerate(teams) for m in range(sizes[ti])
    }
    codes = team_idx.astype(np.int64) * 100 + member
    uniq, inv = np.unique(codes, return_inverse=True)
    resource = np.array([resource_names[(int(c) // 100, int(c) % 100)] for c in uniq], dtype=object)[inv]
    del team_of_act

    base = np.datetime64(EPOCH, "s")
    ts = base + ts_s.astype("timedelta64[s]")
    start_ts = np.where(np.isnan(service), np.datetime64("NaT"), ts - np.nan_to_num(service).astype("timedelta64[s]"))
    keep = ts <= np.datetime64(now, "s")
    events = pd.DataFrame(
        {
            "case_key": (case_of_event + 1).astype(np.int32)[keep],
            "activity_id": activity.astype(np.int32)[keep],
            "ts": ts[keep].astype("datetime64[us]"),
            "start_ts": start_ts[keep].astype("datetime64[us]"),
            "resource": resource[keep],
            "source_id": system_of_act[activity][keep].astype(np.int32),
            "seq": seq[keep].astype(np.int32),
        }
    )
    cases = pd.DataFrame(
        {
            "case_key": np.arange(1, n_cases + 1, dtype=np.int32),
            "case_id": np.char.add("SO-", np.arange(1, n_cases + 1).astype(str)),
            "customer": np.char.add("C", rng.integers(1, 5000, n_cases).astype(str)),
            "region": np.array(REGIONS)[rng.integers(0, len(REGIONS), n_cases)],
            "amount": np.round(rng.lognormal(6.5, 1.0, n_cases), 2),
        }
    )
    return Generated(events=events, cases=cases, now=now)


def n_cases_for(events: int) -> int:
    return max(1, int(round(events / EVENTS_PER_CASE)))


def _ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    from ingest.store import migrate

    migrate(con)


def write(con: duckdb.DuckDBPyConnection, gen: Generated) -> int:
    """Replace the store's content with ``gen`` (sorted layout, run 1). Returns the number of events."""
    from ingest.store import bump_data_version

    _ensure_schema(con)
    con.execute("BEGIN TRANSACTION")
    for table in ("events", "cases", "activities", "sources", "ingest_runs"):
        con.execute(f"DELETE FROM {table}")
    for i, name in enumerate(SYSTEMS, start=1):
        con.execute("INSERT INTO sources (source_id, name, kind, timezone) VALUES (?, ?, 'synthetic', 'UTC')", [i, name])
    con.executemany("INSERT INTO activities VALUES (?, ?)", [[AID[a], a] for a in NAMES])
    con.register("_gen_cases", gen.cases)
    con.execute(
        "INSERT INTO cases SELECT case_key, case_id, "
        "to_json({'customer': customer, 'region': region, 'amount': amount}), 1 FROM _gen_cases"
    )
    con.unregister("_gen_cases")
    con.register("_gen_events", gen.events)
    n = con.execute(
        """
        INSERT INTO events
        SELECT row_number() OVER (ORDER BY case_key, seq) - 1, case_key, activity_id, ts, start_ts, 'complete',
               resource, source_id, 'syn-' || case_key || '-' || seq, seq, 1, NULL
        FROM _gen_events ORDER BY case_key, ts, seq
        """
    ).fetchall()[0][0]
    con.unregister("_gen_events")
    con.execute(
        "INSERT INTO ingest_runs (run_id, job, started_at, ended_at, status, rows_read, rows_loaded) "
        "VALUES (1, 'synthetic', now()::TIMESTAMP, now()::TIMESTAMP, 'succeeded', ?, ?)",
        [n, n],
    )
    con.execute(
        "INSERT INTO store_meta VALUES ('sorted_upto_event_id', (SELECT max(event_id)::VARCHAR FROM events)) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
    )
    bump_data_version(con)
    con.execute("COMMIT")
    con.execute("CHECKPOINT")
    return n


def append(con: duckdb.DuckDBPyConnection, n_cases: int, seed: int, old_now: datetime, new_now: datetime) -> int:
    """Insert the events with ``old_now < ts <= new_now`` as a new ingest run (unsorted tail)."""
    from ingest.store import bump_data_version

    gen = generate(n_cases, seed, new_now)
    ev = gen.events[gen.events["ts"] > pd.Timestamp(old_now)]
    con.execute("BEGIN TRANSACTION")
    run_id = con.execute("SELECT coalesce(max(run_id), 0) + 1 FROM ingest_runs").fetchall()[0][0]
    con.register("_gen_events", ev)
    n = con.execute(
        f"""
        INSERT INTO events
        SELECT (SELECT max(event_id) FROM events) + row_number() OVER (ORDER BY ts, case_key, seq), case_key,
               activity_id, ts, start_ts, 'complete', resource, source_id, 'syn-' || case_key || '-' || seq, seq,
               {int(run_id)}, NULL
        FROM _gen_events
        """
    ).fetchall()[0][0]
    con.unregister("_gen_events")
    con.execute(
        "INSERT INTO ingest_runs (run_id, job, started_at, ended_at, status, rows_read, rows_loaded) "
        "VALUES (?, 'synthetic', now()::TIMESTAMP, now()::TIMESTAMP, 'succeeded', ?, ?)",
        [run_id, n, n],
    )
    bump_data_version(con)
    con.execute("COMMIT")
    return n


def now_for_append(n_cases: int, seed: int, old_now: datetime, fraction: float) -> datetime:
    """The ``new_now`` after which about ``fraction`` of the current events arrive."""
    gen = generate(n_cases, seed, EPOCH + timedelta(days=SPAN_DAYS * 3))
    ts = np.sort(gen.events["ts"].to_numpy())
    before = int(np.searchsorted(ts, np.datetime64(old_now), side="right"))
    idx = min(len(ts) - 1, before + max(1, int(before * fraction)) - 1)
    return pd.Timestamp(ts[idx]).to_pydatetime()


def to_pm4py_frame(gen: Generated) -> pd.DataFrame:
    """The same log as pm4py would read it from a CSV export (names, not ids)."""
    names = np.array([""] + NAMES, dtype=object)
    ev = gen.events
    return pd.DataFrame(
        {
            "case_id": np.char.add("SO-", ev["case_key"].to_numpy().astype(str)),
            "activity": names[ev["activity_id"].to_numpy()],
            "timestamp": ev["ts"],
            "resource": ev["resource"],
        }
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    from ingest.store import open_store

    t0 = time.perf_counter()
    gen = generate(n_cases_for(args.events), args.seed)
    with open_store(args.out) as con:
        n = write(con, gen)
    print(json.dumps({"events": n, "cases": len(gen.cases), "seconds": round(time.perf_counter() - t0, 2)}))


if __name__ == "__main__":
    main()

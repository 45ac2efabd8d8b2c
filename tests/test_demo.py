"""The demo world: native file forms, ground truth recomputed independently from the raw files
(per the definitions in docs/decisions.md), and ``processlens demo`` end to end."""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from processlens.demo import build_world

BERLIN = ZoneInfo("Europe/Berlin")
FINAL = {"Close Order", "Reject Order"}
SIDE = {"Open Ticket", "Resolve Ticket"}
HANDLER = {"Address Invalid": "Correct Address", "Payment Failed": "Retry Payment"}
# the step the reference model enables next (happy path; the handler after an exception)
NEXT = {
    "Create Order": ["Check Credit"], "Check Credit": ["Approve Order", "Reject Order"],
    "Approve Order": ["Pick Goods"], "Pick Goods": ["Pack Goods"], "Pack Goods": ["Ship Goods"],
    "Address Invalid": ["Correct Address"], "Correct Address": ["Ship Goods"], "Ship Goods": ["Create Invoice"],
    "Create Invoice": ["Payment Received"], "Payment Failed": ["Retry Payment"],
    "Retry Payment": ["Payment Received"], "Payment Received": ["Close Order"],
}
DAY = 86400.0
SLA = {"Check Credit": 1 * DAY, "Approve Order": 2 * DAY, "Reject Order": 2 * DAY, "Pick Goods": 2 * DAY,
       "Pack Goods": 1 * DAY, "Ship Goods": 2 * DAY, "Correct Address": 1 * DAY, "Create Invoice": 1 * DAY,
       "Payment Received": 14 * DAY, "Retry Payment": 2 * DAY, "Close Order": 2 * DAY}


# -- reading the world back from its raw files, without any processlens code ----------------------
def read_events(world_dir: Path) -> pd.DataFrame:
    """Every event of the four systems as (case, activity, ts UTC naive, source)."""
    frames = []
    with sqlite3.connect(world_dir / "erp.sqlite") as db:
        erp = pd.read_sql("SELECT order_id AS case_id, status AS activity, changed_at FROM order_status_history", db)
    erp["ts"] = pd.to_datetime(erp.pop("changed_at"), format="%Y-%m-%d %H:%M:%S")
    frames.append(erp.assign(source="ERP"))
    for f in sorted((world_dir / "wms").glob("wms_*.csv")):
        w = pd.read_csv(f, sep=";", dtype=str)
        local = pd.to_datetime(w["Timestamp"], format="%d.%m.%Y %H:%M:%S")
        ts = local.dt.tz_localize(BERLIN, ambiguous="raise", nonexistent="raise").dt.tz_convert("UTC").dt.tz_localize(None)
        frames.append(pd.DataFrame({"case_id": w["Order Ref"], "activity": w["Event"], "ts": ts, "source": "WMS"}))
    tickets = json.loads((world_dir / "helpdesk" / "tickets.json").read_text(encoding="utf-8"))
    rows = [(t["order_ref"], e["type"], datetime.fromisoformat(e["at"]).astimezone(UTC).replace(tzinfo=None))
            for t in tickets for e in t["events"]]
    frames.append(pd.DataFrame(rows, columns=["case_id", "activity", "ts"]).assign(source="Helpdesk"))
    psp = pd.read_json(world_dir / "psp" / "events.jsonl", lines=True, dtype={"created": str})
    frames.append(pd.DataFrame({
        "case_id": psp["order_ref"], "activity": psp["type"],
        "ts": pd.to_datetime(psp["created"], format="%Y-%m-%dT%H:%M:%SZ"), "source": "PSP"}))
    ev = pd.concat(frames, ignore_index=True)
    ev["ts"] = ev["ts"].astype("datetime64[s]")
    return ev


def recompute_truth(events: pd.DataFrame, now: datetime, with_side_events: bool = False) -> dict[str, dict]:
    """Stuck and unhandled exceptions by the shared definitions, from the events alone."""
    ev = events if with_side_events else events[~events["activity"].isin(SIDE)]
    ev = ev.sort_values(["case_id", "ts"], kind="stable")
    prev = ev.groupby("case_id")["ts"].shift()
    waits = pd.DataFrame({"activity": ev["activity"], "w": (ev["ts"] - prev).dt.total_seconds()}).dropna()
    model = ev[~ev["activity"].isin(SIDE)]
    waits = waits.loc[waits.index.isin(model.index)]
    p95 = waits.groupby("activity")["w"].quantile(0.95).to_dict()
    now_naive = now.astimezone(UTC).replace(tzinfo=None)
    out = {}
    for case_id, g in model.groupby("case_id", sort=False):
        acts = g["activity"].tolist()
        last_act, last_ts = acts[-1], g["ts"].iloc[-1]
        stuck_at = None
        if last_act not in FINAL:
            step = NEXT[last_act][0]
            waited = (now_naive - last_ts.to_pydatetime()).total_seconds()
            if waited > SLA[step] or waited > p95.get(step, np.inf):
                stuck_at = step
        unhandled = None
        for i, a in enumerate(acts):
            if a in HANDLER and HANDLER[a] not in acts[i + 1:]:
                unhandled = a
                break
        out[case_id] = {"stuck": stuck_at is not None, "stuck_at": stuck_at, "unhandled_exception": unhandled}
    return out


def deviations_seen(acts: list[str]) -> set[str]:
    """The injected deviations visible in one case's model activities."""
    seen = set()
    if "Approve Order" in acts and "Check Credit" not in acts:
        seen.add("skipped_credit_check")
    if acts.count("Create Invoice") > 1:
        seen.add("duplicate_invoice")
    if any(a == "Pack Goods" and "Pick Goods" in acts[i + 1:] for i, a in enumerate(acts)):
        seen.add("rework_loop")
    if "Create Invoice" in acts and "Ship Goods" in acts and acts.index("Create Invoice") < acts.index("Ship Goods"):
        seen.add("wrong_order")
    return seen


# -- fixtures -----------------------------------------------------------------------------------------
_WORLDS: dict = {}


def world_for(tmp_path_factory, cases: int, seed: int, now: str | None, days: int = 400):
    key = (cases, seed, now, days)
    if key not in _WORLDS:
        d = tmp_path_factory.mktemp(f"world{seed}")
        now_dt = datetime.fromisoformat(now.replace("Z", "+00:00")) if now else None
        world = build_world(d, cases=cases, seed=seed, now=now_dt, days=days)
        _WORLDS[key] = (world, read_events(d))
    return _WORLDS[key]


# Current time, the Sunday DST ends, right after the Christmas holidays.
SCENARIOS = [(1500, 11, None, 400), (1500, 12, "2026-10-25T15:30:00Z", 150), (1200, 13, "2027-01-02T07:00:00Z", 120)]


# -- tests --------------------------------------------------------------------------------------------
def test_native_forms(tmp_path_factory):
    world, events = world_for(tmp_path_factory, *SCENARIOS[0])
    d = world.dir
    with sqlite3.connect(d / "erp.sqlite") as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"orders", "order_status_history"} <= tables
        cols = {r[1] for r in db.execute("PRAGMA table_info(orders)")}
        assert {"order_id", "customer", "region", "channel", "amount", "priority"} <= cols
        cols = [r[1] for r in db.execute("PRAGMA table_info(order_status_history)")]
        assert cols[:5] == ["history_id", "order_id", "status", "changed_at", "changed_by"]
        orders = [r[0] for r in db.execute("SELECT order_id FROM orders")]
        assert len(orders) == len(set(orders)) == world.cases
        stamps = [r[0] for r in db.execute("SELECT changed_at FROM order_status_history")]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", t) for t in stamps)
    assert set(world.truth) == set(orders)

    files = sorted((d / "wms").iterdir())
    assert files and all(re.fullmatch(r"wms_\d{4}-\d\d-\d\d\.csv", f.name) for f in files)
    for f in files[:: max(1, len(files) // 25)]:
        lines = f.read_text(encoding="utf-8").splitlines()
        assert lines[0] == "Order Ref;Event;Timestamp;Operator;Warehouse"
        day = f.name[4:14]
        for line in lines[1:]:
            ref, event, stamp, operator, warehouse = line.split(";")
            assert re.fullmatch(r"\d\d\.\d\d\.\d{4} \d\d:\d\d:\d\d", stamp), stamp  # naive local time, no offset
            local = datetime.strptime(stamp, "%d.%m.%Y %H:%M:%S")
            assert local.strftime("%Y-%m-%d") == day  # one file per local day
            assert 6 <= local.hour < 22  # never in the hour DST makes ambiguous
            assert event in {"Pick Goods", "Pack Goods", "Address Invalid", "Ship Goods"} and operator and warehouse

    tickets = json.loads((d / "helpdesk" / "tickets.json").read_text(encoding="utf-8"))
    assert isinstance(tickets, list) and tickets
    for t in tickets:
        assert t["order_ref"] in world.truth and t["events"]
        for e in t["events"]:
            assert e["ticket_id"] == t["ticket_id"] and "order_ref" not in e
            assert re.search(r"[+-]\d\d:\d\d$", e["at"])

    lines = (d / "psp" / "events.jsonl").read_text(encoding="utf-8").splitlines()
    for line in lines:
        rec = json.loads(line)
        assert {"payment_id", "order_ref", "type", "created", "amount"} <= set(rec)
        assert rec["created"].endswith("Z") and rec["order_ref"] in world.truth

    info = json.loads((d / "world.json").read_text())
    assert info["now"] == world.now.strftime("%Y-%m-%dT%H:%M:%SZ") and info["seed"] == 11 and info["cases"] == 1500
    assert json.loads((d / "truth.json").read_text()) == world.truth
    assert world.config_path == d / "processlens.toml" and world.config_path.exists()
    assert events["ts"].max() < pd.Timestamp(world.now.replace(tzinfo=None))


@pytest.mark.parametrize("scenario", SCENARIOS, ids=["now", "dst-end-sunday", "after-holidays"])
def test_truth_matches_definitions(tmp_path_factory, scenario):
    world, events = world_for(tmp_path_factory, *scenario)
    truth = world.truth
    assert set(events["case_id"]) == set(truth)
    for side in (False, True):
        expected = recompute_truth(events, world.now, with_side_events=side)
        assert set(expected) == set(truth)
        wrong = {c: (truth[c], e) for c, e in expected.items()
                 if (truth[c]["stuck"], truth[c]["stuck_at"], truth[c]["unhandled_exception"])
                 != (e["stuck"], e["stuck_at"], e["unhandled_exception"])}
        assert not wrong, f"{len(wrong)} cases disagree (side events {side}), e.g. {list(wrong.items())[:3]}"
    # the labels cover every kind of behaviour
    assert sum(v["stuck"] for v in truth.values()) >= 10
    assert {v["stuck_at"] for v in truth.values() if v["stuck"]} >= {"Pick Goods", "Payment Received",
                                                                     "Correct Address", "Retry Payment"}
    assert {v["unhandled_exception"] for v in truth.values()} >= {"Address Invalid", "Payment Failed", None}
    # deviations are exactly the ones visible in the events
    model = events[~events["activity"].isin(SIDE)].sort_values(["case_id", "ts"], kind="stable")
    seen = model.groupby("case_id")["activity"].agg(list).map(deviations_seen).to_dict()
    assert all(set(truth[c]["deviations"]) == seen[c] for c in truth)
    assert {d for v in truth.values() for d in v["deviations"]} == {
        "skipped_credit_check", "duplicate_invoice", "rework_loop", "wrong_order"}


@pytest.mark.parametrize("scenario", SCENARIOS[:2], ids=["now", "dst-end-sunday"])
def test_clean_separation(tmp_path_factory, scenario):
    """Open ordinary cases wait less than min(SLA, median); stuck ones more than 3 x max(SLA, largest)."""
    world, events = world_for(tmp_path_factory, *scenario)
    model = events[~events["activity"].isin(SIDE)].sort_values(["case_id", "ts"], kind="stable")
    w = (model["ts"] - model.groupby("case_id")["ts"].shift()).dt.total_seconds()
    stats = pd.DataFrame({"a": model["activity"], "w": w}).dropna().groupby("a")["w"].agg(["median", "max"])
    now = pd.Timestamp(world.now.replace(tzinfo=None))
    last = model.groupby("case_id").tail(1).set_index("case_id")
    open_cases = last[~last["activity"].isin(FINAL)]
    assert len(open_cases) > 20  # in-flight work near now
    for case_id, row in open_cases.iterrows():
        waited = (now - row["ts"]).total_seconds()
        steps = NEXT[row["activity"]]
        if world.truth[case_id]["stuck"]:
            assert all(waited > 3 * max(SLA[s], stats.loc[s, "max"]) for s in steps), case_id
        else:
            assert row["activity"] not in HANDLER
            assert all(waited < min(SLA[s], stats.loc[s, "median"]) for s in steps), case_id


def test_variety(tmp_path_factory):
    """Seasonality, owners with different workloads and speeds, a customer mix."""
    world, events = world_for(tmp_path_factory, *SCENARIOS[0])
    with sqlite3.connect(world.dir / "erp.sqlite") as db:
        orders = pd.read_sql("SELECT * FROM orders", db)
        hist = pd.read_sql("SELECT * FROM order_status_history", db)
    created = pd.to_datetime(orders["created_at"]).dt.tz_localize("UTC").dt.tz_convert(BERLIN)
    weekday = created.dt.weekday.value_counts()
    assert weekday.get(6, 0) < weekday.loc[:4].min() / 2  # Sundays are quiet
    assert orders["customer"].nunique() > 20 and orders["customer"].value_counts().iloc[0] > 3 * orders[
        "customer"].value_counts().median()
    assert set(orders["channel"]) == {"web", "sales", "edi"} and orders["region"].nunique() >= 5
    by_person = hist[hist["status"] == "Approve Order"]["changed_by"].value_counts()
    assert len(by_person) >= 4 and by_person.iloc[0] > 2 * by_person.iloc[-1]  # different workloads
    wms = events[events["source"] == "WMS"]
    assert wms["ts"].dt.tz_localize("UTC").dt.tz_convert(BERLIN).dt.weekday.max() <= 5  # no Sunday shifts


def test_same_seed_same_world(tmp_path):
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    a = build_world(tmp_path / "a", cases=400, seed=5, now=now, days=60)
    b = build_world(tmp_path / "b", cases=400, seed=5, now=now, days=60)
    c = build_world(tmp_path / "c", cases=400, seed=6, now=now, days=60)
    assert a.truth == b.truth and a.counts == b.counts
    assert (tmp_path / "a" / "psp" / "events.jsonl").read_bytes() == (tmp_path / "b" / "psp" / "events.jsonl").read_bytes()
    assert a.counts != c.counts or a.truth != c.truth


# -- processlens demo end to end ------------------------------------------------------------------------
def _run_demo(*args: str):
    from processlens.cli import cli

    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _store_events(db: Path) -> pd.DataFrame:
    from ingest.store import open_store

    with open_store(db, read_only=True) as con:
        return con.execute("SELECT case_id, activity, ts, source FROM event_log").df()


def _multiset(ev: pd.DataFrame) -> Counter:
    seconds = ev["ts"].astype("datetime64[s]").astype("int64")
    return Counter(zip(ev["source"], ev["case_id"], ev["activity"], seconds, strict=True))


def test_demo_command_end_to_end(tmp_path):
    pytest.importorskip("ingest.jobs")
    db, world_dir, truth_path = tmp_path / "store.duckdb", tmp_path / "world", tmp_path / "out" / "truth.json"
    args = ["--db", str(db), "demo", "--no-dashboard", "--cases", "300", "--days", "30", "--seed", "3",
            "--dir", str(world_dir), "--truth-out", str(truth_path), "--json"]
    res = _run_demo(*args)
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    truth = json.loads(truth_path.read_text())
    assert len(truth) == 300 and out["stats"]["cases"] == 300
    stored = _store_events(db)
    assert set(stored["case_id"]) == set(truth)
    raw = read_events(world_dir)
    # every event of every system arrived, at the same UTC instant as in its raw file
    assert _multiset(stored) == _multiset(raw)
    assert out["stats"]["pending_correlation"] == 0 and out["stats"]["rejected_records"] == 0

    # a second run replaces the demo store: nothing doubles
    res = _run_demo(*args)
    assert res.exit_code == 0, res.output
    again = _store_events(db)
    assert len(again) == len(raw) and not again.duplicated(["case_id", "activity", "ts"]).any()


def test_demo_refuses_foreign_store(tmp_path):
    pytest.importorskip("ingest.jobs")
    from ingest.api import ingest_file
    from ingest.store import open_store

    db = tmp_path / "mine.duckdb"
    log = tmp_path / "mine.csv"
    log.write_text("case,activity,time\n1,a,2024-01-01 10:00:00\n1,b,2024-01-01 11:00:00\n", encoding="utf-8")
    with open_store(db) as con:
        ingest_file(con, log, progress=False)
    args = ["--db", str(db), "demo", "--no-dashboard", "--cases", "50", "--days", "14", "--dir", str(tmp_path / "w")]
    res = _run_demo(*args)
    assert res.exit_code == 2 and "mine.csv" in res.output and "--force" in res.output
    assert set(_store_events(db)["source"]) == {"mine.csv"}
    res = _run_demo(*args, "--force")
    assert res.exit_code == 0, res.output
    assert set(_store_events(db)["source"]) == {"ERP", "WMS", "Helpdesk", "PSP"}


def test_rebuild_replaces_previous_world(tmp_path):
    """Stale daily exports of an older world in the same folder would be ingested: they must go."""
    build_world(tmp_path, cases=150, seed=1, now=datetime(2026, 3, 1, 12, tzinfo=UTC), days=20)
    old = {f.name for f in (tmp_path / "wms").iterdir()}
    world = build_world(tmp_path, cases=150, seed=1, now=datetime(2026, 6, 1, 12, tzinfo=UTC), days=20)
    new = {f.name for f in (tmp_path / "wms").iterdir()}
    assert old and new and not (old & new)
    assert set(read_events(tmp_path)["case_id"]) == set(world.truth)


def test_config_copy_drops_missing_includes(tmp_path):
    from processlens.config import load_settings
    from processlens.demo.world import copy_config

    template = tmp_path / "template"
    (template / "model").mkdir(parents=True)
    (template / "model" / "m.txt").write_text("x", encoding="utf-8")
    (template / "models.toml").write_text('[models]\ndefault = "m"\n', encoding="utf-8")
    (template / "processlens.toml").write_text(
        'include = ["models.toml", "rules.toml"]\n\n[jobs.a]\nkind = "csv"\npath = "a.csv"\n', encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    path = copy_config(out, template)
    assert (out / "model" / "m.txt").exists() and not (out / "rules.toml").exists()
    settings = load_settings(db=tmp_path / "s.duckdb", config=path)
    assert settings.section("models")["default"] == "m" and "a" in settings.section("jobs")

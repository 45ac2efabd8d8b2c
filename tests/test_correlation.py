"""Correlation across systems: help-desk ticket events join the ERP order's case through ticket_id."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from jobrun import run_named_job

from ingest.store import open_store
from processlens.config import load_settings

CONFIG = """
[store]
path = "store.duckdb"

[jobs.erp]
kind = "sqlite"
source = "ERP"
path = "erp.sqlite"
query = "SELECT * FROM order_status_history WHERE history_id > :cursor"
cursor = "history_id"
[jobs.erp.mapping]
case = "order_id"
activity = "status"
timestamp = "changed_at"
record_id = "history_id"

[jobs.helpdesk]
kind = "json"
source = "Helpdesk"
path = "helpdesk.json"
records_path = "tickets[].events"
[jobs.helpdesk.mapping]
case = "order_id"
activity = "event"
timestamp = "at"
record_id = "event_id"
correlation = { key = "ticket_id" }
"""


def setup(tmp_path: Path):
    (tmp_path / "processlens.toml").write_text(CONFIG, encoding="utf-8")
    db = sqlite3.connect(tmp_path / "erp.sqlite")
    db.execute("CREATE TABLE order_status_history (history_id INTEGER PRIMARY KEY, order_id TEXT, status TEXT, changed_at TEXT)")
    db.commit()
    db.close()
    return load_settings(config=tmp_path / "processlens.toml")


def erp_rows(tmp_path: Path, rows: list[tuple]) -> None:
    db = sqlite3.connect(tmp_path / "erp.sqlite")
    db.executemany("INSERT INTO order_status_history (order_id, status, changed_at) VALUES (?, ?, ?)", rows)
    db.commit()
    db.close()


def helpdesk(tmp_path: Path, tickets: list[dict]) -> None:
    (tmp_path / "helpdesk.json").write_text(json.dumps({"tickets": tickets}), encoding="utf-8")


def ticket(tid: str, events: list[tuple], order: str | None = None) -> dict:
    """events: (event_id, activity, at); the first event of the ticket names the order when given."""
    evs = [{"event_id": e, "event": a, "at": t} for e, a, t in events]
    if order and evs and evs[0]["event"] == "Open Ticket":
        evs[0]["order_id"] = order
    return {"ticket_id": tid, "subject": "where is my parcel", "events": evs}


def run(settings, name: str):
    res = run_named_job(settings, name)
    assert res.status == "succeeded", res.error
    return res


def trace(settings, case_id: str) -> list[tuple[str, str]]:
    with open_store(settings.db_path, read_only=True) as con:
        return [(a, s) for a, s in con.execute(
            "SELECT activity, source FROM event_log WHERE case_id = ? ORDER BY ts, event_id", [case_id]).fetchall()]


def test_later_ticket_events_carry_only_the_ticket_id(tmp_path: Path):
    settings = setup(tmp_path)
    erp_rows(tmp_path, [("O-1", "Create Order", "2024-03-01 08:00:00"), ("O-1", "Close Order", "2024-03-09 08:00:00")])
    helpdesk(tmp_path, [ticket("T-9", [("e1", "Open Ticket", "2024-03-02 10:00:00"),
                                       ("e2", "Resolve Ticket", "2024-03-03 10:00:00")], order="O-1")])
    run(settings, "erp")
    res = run(settings, "helpdesk")
    assert res.rows_loaded == 2 and res.pending == 0
    assert trace(settings, "O-1") == [("Create Order", "ERP"), ("Open Ticket", "Helpdesk"),
                                      ("Resolve Ticket", "Helpdesk"), ("Close Order", "ERP")]
    with open_store(settings.db_path, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM cases").fetchone()[0] == 1
        assert con.execute("SELECT case_id FROM correlation_keys WHERE key_name = 'ticket_id' AND key_value = 'T-9'"
                           ).fetchall() == [("O-1",)]


def test_ticket_before_the_erp_order_joins_the_same_case(tmp_path: Path):
    settings = setup(tmp_path)
    helpdesk(tmp_path, [ticket("T-1", [("e1", "Open Ticket", "2024-03-02 10:00:00"),
                                       ("e2", "Resolve Ticket", "2024-03-04 10:00:00")], order="O-7")])
    run(settings, "helpdesk")  # the ERP has not delivered O-7 yet
    erp_rows(tmp_path, [("O-7", "Create Order", "2024-03-01 08:00:00"), ("O-7", "Approve Order", "2024-03-03 08:00:00")])
    run(settings, "erp")
    assert trace(settings, "O-7") == [("Create Order", "ERP"), ("Open Ticket", "Helpdesk"),
                                      ("Approve Order", "ERP"), ("Resolve Ticket", "Helpdesk")]
    with open_store(settings.db_path, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM cases").fetchone()[0] == 1


def test_events_wait_pending_until_the_link_arrives_on_a_later_run(tmp_path: Path):
    settings = setup(tmp_path)
    erp_rows(tmp_path, [("O-5", "Create Order", "2024-03-01 08:00:00")])
    run(settings, "erp")
    # first export: only the later events of ticket T-5 (they name no order)
    helpdesk(tmp_path, [ticket("T-5", [("e2", "Reply Customer", "2024-03-03 10:00:00"),
                                       ("e3", "Resolve Ticket", "2024-03-04 10:00:00")])])
    first = run(settings, "helpdesk")
    assert (first.rows_loaded, first.pending) == (0, 2)
    assert trace(settings, "O-5") == [("Create Order", "ERP")]
    again = run(settings, "helpdesk")  # re-reading the same export neither duplicates nor loses them
    assert (again.rows_loaded, again.duplicates_skipped, again.pending) == (0, 2, 2)
    # next export: the ticket's opening event, which names the order
    helpdesk(tmp_path, [ticket("T-5", [("e1", "Open Ticket", "2024-03-02 10:00:00"),
                                       ("e2", "Reply Customer", "2024-03-03 10:00:00"),
                                       ("e3", "Resolve Ticket", "2024-03-04 10:00:00")], order="O-5")])
    second = run(settings, "helpdesk")
    assert second.rows_loaded == 1 and second.resolved_pending == 2 and second.pending == 0
    assert trace(settings, "O-5") == [("Create Order", "ERP"), ("Open Ticket", "Helpdesk"),
                                      ("Reply Customer", "Helpdesk"), ("Resolve Ticket", "Helpdesk")]
    with open_store(settings.db_path, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM pending_events").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM events WHERE source_id = (SELECT source_id FROM sources "
                           "WHERE name = 'Helpdesk')").fetchone()[0] == 3


def test_record_with_neither_case_nor_key_is_rejected(tmp_path: Path):
    settings = setup(tmp_path)
    helpdesk(tmp_path, [{"ticket_id": None, "events": [{"event_id": "x", "event": "Open Ticket", "at": "2024-03-02 10:00:00"}]}])
    res = run(settings, "helpdesk")
    assert res.rows_rejected == 1 and res.rows_loaded == 0
    with open_store(settings.db_path, read_only=True) as con:
        reason, location = con.execute("SELECT reason, location FROM rejects").fetchone()
    assert "missing case id" in reason and location.endswith("helpdesk.json")

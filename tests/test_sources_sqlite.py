"""SQLite jobs against a real SQLite file: incremental cursor, batches, time zones, errors."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from jobrun import run_named_job

from ingest.jobs import read_cursor
from ingest.sources.sqlite_db import decode_cursor, prepare_query
from ingest.store import open_store
from processlens.config import load_settings

QUERY = ("SELECT h.history_id, h.order_id, h.status, h.changed_at, h.changed_by, o.customer "
         "FROM order_status_history h JOIN orders o USING (order_id) WHERE h.history_id > :cursor ORDER BY h.history_id")


def make_erp(path: Path, n_orders: int = 5, start_id: int = 1) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE IF NOT EXISTS orders (order_id TEXT PRIMARY KEY, customer TEXT)")
    db.execute("CREATE TABLE IF NOT EXISTS order_status_history (history_id INTEGER PRIMARY KEY, order_id TEXT, "
               "status TEXT, changed_at TEXT, changed_by TEXT)")
    hid = start_id
    for i in range(n_orders):
        oid = f"O-{start_id + i:04d}"
        db.execute("INSERT OR IGNORE INTO orders VALUES (?, ?)", [oid, f"C{i % 3}"])
        for k, status in enumerate(["Create Order", "Check Credit", "Approve Order"]):
            db.execute("INSERT INTO order_status_history VALUES (?, ?, ?, ?, ?)",
                       [hid, oid, status, f"2024-01-{10 + i:02d} {9 + k:02d}:00:00", f"user{k}"])
            hid += 1
    db.commit()
    db.close()


def write_config(tmp_path: Path, body: str) -> Path:
    cfg = tmp_path / "processlens.toml"
    cfg.write_text(f'[store]\npath = "store.duckdb"\n{body}', encoding="utf-8")
    return cfg


JOB = """
[jobs.erp]
kind = "sqlite"
source = "ERP"
path = "erp.sqlite"
query = "{query}"
cursor = "history_id"
{extra}
[jobs.erp.mapping]
case = "order_id"
activity = "status"
timestamp = "changed_at"
resource = "changed_by"
record_id = "history_id"
timezone = "Europe/Berlin"
case_attributes = ["customer"]
"""


def erp_settings(tmp_path: Path, query: str = QUERY, extra: str = ""):
    cfg = write_config(tmp_path, JOB.format(query=query, extra=extra))
    return load_settings(config=cfg)


def run(settings, name: str = "erp"):
    return run_named_job(settings, name)


def sqlite_count(path: Path, sql: str) -> int:
    db = sqlite3.connect(path)
    try:
        return db.execute(sql).fetchone()[0]
    finally:
        db.close()


def test_incremental_runs_read_only_new_rows(tmp_path: Path):
    erp = tmp_path / "erp.sqlite"
    make_erp(erp, n_orders=4)
    settings = erp_settings(tmp_path)
    first = run(settings)
    total = sqlite_count(erp, "SELECT count(*) FROM order_status_history")
    assert first.status == "succeeded", first.error
    assert first.rows_read == first.rows_loaded == total
    assert first.cursor == str(sqlite_count(erp, "SELECT max(history_id) FROM order_status_history"))

    make_erp(erp, n_orders=2, start_id=100)  # new orders, history ids 100..105
    second = run(settings)
    new = sqlite_count(erp, "SELECT count(*) FROM order_status_history WHERE history_id >= 100")
    assert second.rows_read == second.rows_loaded == new  # the cursor restricted the query
    assert second.cursor == str(sqlite_count(erp, "SELECT max(history_id) FROM order_status_history"))

    third = run(settings)
    assert (third.rows_read, third.rows_loaded) == (0, 0)
    with open_store(settings.db_path, read_only=True) as con:
        assert read_cursor(con, "erp") == second.cursor
        assert con.execute("SELECT count(*) FROM events").fetchone()[0] == total + new
        assert con.execute("SELECT count(*) FROM cases").fetchone()[0] == sqlite_count(erp, "SELECT count(*) FROM orders")
        attrs = con.execute("SELECT attrs->>'customer' FROM cases WHERE case_id = 'O-0002'").fetchone()[0]
        assert attrs == "C1"


def test_naive_times_are_read_in_the_source_zone(tmp_path: Path):
    erp = tmp_path / "erp.sqlite"
    db = sqlite3.connect(erp)
    db.execute("CREATE TABLE orders (order_id TEXT PRIMARY KEY, customer TEXT)")
    db.execute("CREATE TABLE order_status_history (history_id INTEGER PRIMARY KEY, order_id TEXT, status TEXT, "
               "changed_at TEXT, changed_by TEXT)")
    db.execute("INSERT INTO orders VALUES ('O-1', 'C')")
    db.execute("INSERT INTO order_status_history VALUES (1, 'O-1', 'Create Order', '2024-01-15 10:00:00', 'u')")
    db.execute("INSERT INTO order_status_history VALUES (2, 'O-1', 'Close Order', '2024-07-01 10:00:00', 'u')")
    db.commit()
    db.close()
    settings = erp_settings(tmp_path)
    assert run(settings).rows_loaded == 2
    with open_store(settings.db_path, read_only=True) as con:
        got = [str(r[0]) for r in con.execute("SELECT ts FROM events ORDER BY ts").fetchall()]
    assert got == ["2024-01-15 09:00:00", "2024-07-01 08:00:00"]  # CET = UTC+1, CEST = UTC+2


def test_batches_are_streamed_and_numbered_continuously(tmp_path: Path):
    erp = tmp_path / "erp.sqlite"
    make_erp(erp, n_orders=7)  # 21 rows
    settings = erp_settings(tmp_path, extra="batch_size = 4")
    res = run(settings)
    assert res.rows_loaded == 21
    with open_store(settings.db_path, read_only=True) as con:
        positions = [r[0] for r in con.execute("SELECT position FROM events ORDER BY position").fetchall()]
        ids = con.execute("SELECT list(record_id::INT ORDER BY event_id) FROM events").fetchone()[0]
    assert positions == list(range(21))
    assert ids == sorted(ids)  # event ids follow source order across batches


def test_text_cursor_with_initial_cursor_and_wrapped_query(tmp_path: Path):
    erp = tmp_path / "erp.sqlite"
    make_erp(erp, n_orders=5)  # changed_at days 10..14
    query = "SELECT h.*, o.customer FROM order_status_history h JOIN orders o USING (order_id)"
    cfg = JOB.format(query=query, extra='initial_cursor = "2024-01-12 23:59:59"').replace(
        'cursor = "history_id"', 'cursor = "changed_at"')
    settings = load_settings(config=write_config(tmp_path, cfg))
    res = run(settings)
    expected = sqlite_count(erp, "SELECT count(*) FROM order_status_history WHERE changed_at > '2024-01-12 23:59:59'")
    assert res.rows_loaded == expected
    assert res.cursor == "2024-01-14 11:00:00"
    assert run(settings).rows_read == 0


def test_first_run_without_cursor_reads_everything():
    sql, binds = prepare_query("SELECT * FROM t WHERE t.changed_at >= :cursor AND x = 1", "changed_at", None)
    assert ":cursor" not in sql and not binds
    sql, binds = prepare_query("SELECT * FROM t WHERE changed_at > :cursor", "changed_at", "2024")
    assert binds and ":cursor" in sql
    assert decode_cursor("42") == 42 and decode_cursor("007") == "007" and decode_cursor("2024-01-01") == "2024-01-01"


def test_bad_query_fails_the_run_and_keeps_the_cursor(tmp_path: Path):
    erp = tmp_path / "erp.sqlite"
    make_erp(erp, n_orders=2)
    settings = erp_settings(tmp_path)
    ok = run(settings)
    bad = erp_settings(tmp_path, query="SELECT * FROM no_such_table WHERE history_id > :cursor")
    res = run(bad)
    assert res.status == "failed"
    assert "no_such_table" in res.error and "erp.sqlite" in res.error
    with open_store(settings.db_path, read_only=True) as con:
        assert read_cursor(con, "erp") == ok.cursor
        status, error = con.execute("SELECT status, error FROM ingest_runs ORDER BY run_id DESC LIMIT 1").fetchone()
    assert status == "failed" and "no_such_table" in error


def test_cursor_column_missing_from_result(tmp_path: Path):
    make_erp(tmp_path / "erp.sqlite", n_orders=1)
    settings = erp_settings(tmp_path, query="SELECT order_id, status, changed_at, changed_by, history_id AS hid, "
                                           "'x' AS customer FROM order_status_history")
    res = run(settings)
    assert res.status == "failed" and "history_id" in res.error


def test_missing_database_file(tmp_path: Path):
    settings = erp_settings(tmp_path)
    res = run(settings)
    assert res.status == "failed" and "does not exist" in res.error


@pytest.mark.parametrize("n", [0])
def test_empty_result_loads_nothing_and_sets_no_cursor(tmp_path: Path, n: int):
    make_erp(tmp_path / "erp.sqlite", n_orders=n)
    settings = erp_settings(tmp_path)
    res = run(settings)
    assert res.status == "succeeded" and res.rows_read == 0 and res.cursor is None

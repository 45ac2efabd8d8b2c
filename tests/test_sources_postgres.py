"""PostgreSQL jobs against a real server (Debian package) started by the test session."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from jobrun import run_named_job
from pg import postgres_dsn, postgres_server  # noqa: F401  (fixtures)

from ingest.jobs import load_jobs, read_cursor
from ingest.store import open_store
from processlens.config import load_settings
from processlens.errors import ConfigError

pytestmark = pytest.mark.postgres


def fill(dsn: str, first: int, last: int) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute("""CREATE TABLE IF NOT EXISTS payments (
            id BIGSERIAL PRIMARY KEY, order_id TEXT NOT NULL, kind TEXT NOT NULL,
            happened_at TIMESTAMPTZ NOT NULL, booked_local TIMESTAMP, amount NUMERIC(12, 2), meta JSONB, note TEXT)""")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO payments (id, order_id, kind, happened_at, booked_local, amount, meta, note) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                [(i, f"O-{i // 2}", "Payment Failed" if i % 5 == 0 else "Payment Received",
                  "2024-05-01 12:00:00+02", f"2024-05-01 12:{i % 60:02d}:00", f"{i}.50",
                  psycopg.types.json.Jsonb({"try": i % 3}), "50% off" if i == first else None)
                 for i in range(first, last + 1)],
            )


def settings_for(tmp_path: Path, query: str, cursor: str = "id", extra: str = "", dsn_line: str = 'dsn_env = "TEST_PG_DSN"'):
    (tmp_path / "processlens.toml").write_text(f"""
[store]
path = "store.duckdb"

[jobs.psp]
kind = "postgres"
source = "PSP"
{dsn_line}
query = "{query}"
cursor = "{cursor}"
batch_size = 7
{extra}
[jobs.psp.mapping]
case = "order_id"
activity = "kind"
timestamp = "happened_at"
record_id = "id"
timezone = "Europe/Berlin"
""", encoding="utf-8")
    return load_settings(config=tmp_path / "processlens.toml")


def run(settings):
    return run_named_job(settings)


def pg_count(dsn: str, sql: str):
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql).fetchone()[0]


def test_incremental_integer_cursor_streams_in_batches(tmp_path, postgres_dsn, monkeypatch):  # noqa: F811
    monkeypatch.setenv("TEST_PG_DSN", postgres_dsn)
    fill(postgres_dsn, 1, 30)
    settings = settings_for(tmp_path, "SELECT * FROM payments WHERE id > :cursor AND note IS DISTINCT FROM 'x%' ORDER BY id")
    first = run(settings)
    assert first.status == "succeeded", first.error
    assert first.rows_loaded == pg_count(postgres_dsn, "SELECT count(*) FROM payments")
    assert first.cursor == str(pg_count(postgres_dsn, "SELECT max(id) FROM payments"))
    fill(postgres_dsn, 31, 40)
    second = run(settings)
    assert second.rows_read == second.rows_loaded == 10  # only rows past the watermark were read
    assert run(settings).rows_read == 0
    with open_store(settings.db_path, read_only=True) as con:
        assert read_cursor(con, "psp") == "40"
        # timestamptz is an instant: 12:00+02 is 10:00 UTC whatever the mapping's zone says
        assert {str(r[0]) for r in con.execute("SELECT DISTINCT ts FROM events").fetchall()} == {"2024-05-01 10:00:00"}
        amount, meta = con.execute("SELECT attrs->>'amount', attrs->>'meta' FROM events WHERE record_id = '3'").fetchone()
        assert float(amount) == 3.5 and '"try"' in meta
        # positions number the rows of each run across its batches of 7
        assert con.execute("SELECT list(position ORDER BY position) FROM events WHERE run_id = ?",
                           [first.run_id]).fetchone()[0] == list(range(30))


def test_timestamptz_cursor_with_initial_cursor(tmp_path, postgres_dsn, monkeypatch):  # noqa: F811
    monkeypatch.setenv("TEST_PG_DSN", postgres_dsn)
    fill(postgres_dsn, 1, 12)
    with psycopg.connect(postgres_dsn) as conn:  # spread the times: row i at 10:00 UTC + i minutes
        conn.execute("UPDATE payments SET happened_at = timestamptz '2024-05-01 10:00:00+00' + id * interval '1 minute'")
    settings = settings_for(tmp_path, "SELECT * FROM payments WHERE happened_at > :cursor", cursor="happened_at",
                            extra='initial_cursor = "2024-05-01T10:08:00+00:00"')
    first = run(settings)
    assert first.status == "succeeded", first.error
    assert first.rows_loaded == 4  # 10:09 .. 10:12
    assert first.cursor.startswith("2024-05-01T10:12:00")
    with psycopg.connect(postgres_dsn) as conn:
        conn.execute("INSERT INTO payments (id, order_id, kind, happened_at) VALUES (99, 'O-99', 'Payment Received', "
                     "timestamptz '2024-05-01 11:00:00+00')")
    second = run(settings)
    assert second.rows_read == 1 and second.rows_loaded == 1


def test_naive_timestamp_column_uses_the_mapping_zone(tmp_path, postgres_dsn, monkeypatch):  # noqa: F811
    monkeypatch.setenv("TEST_PG_DSN", postgres_dsn)
    fill(postgres_dsn, 1, 3)
    settings = settings_for(tmp_path, "SELECT id, order_id, kind, booked_local AS happened_at FROM payments")
    assert run(settings).rows_loaded == 3
    with open_store(settings.db_path, read_only=True) as con:
        got = [str(r[0]) for r in con.execute("SELECT ts FROM events ORDER BY ts").fetchall()]
    assert got == ["2024-05-01 10:01:00", "2024-05-01 10:02:00", "2024-05-01 10:03:00"]  # CEST = UTC+2


def test_bad_query_fails_and_names_the_server_without_secrets(tmp_path, postgres_dsn, monkeypatch):  # noqa: F811
    monkeypatch.setenv("TEST_PG_DSN", postgres_dsn + " password=hunter2")
    settings = settings_for(tmp_path, "SELECT * FROM missing_table")
    res = run(settings)
    assert res.status == "failed" and "missing_table" in res.error
    assert "hunter2" not in res.error


def test_unreachable_server_fails_the_run(tmp_path, monkeypatch):
    from conftest import free_port

    monkeypatch.setenv("TEST_PG_DSN", f"host=127.0.0.1 port={free_port()} user=postgres dbname=x connect_timeout=2")
    res = run(settings_for(tmp_path, "SELECT 1"))
    assert res.status == "failed" and "cannot connect to PostgreSQL" in res.error


def test_password_in_config_dsn_is_refused(tmp_path):
    settings = settings_for(tmp_path, "SELECT 1", dsn_line='dsn = "postgresql://app:secret@db/erp"')
    with pytest.raises(ConfigError) as err:
        load_jobs(settings)
    assert "dsn_env" in err.value.hint and "psp" in err.value.message

"""The store: migrations applied on open (including gaps), read-only opening, waiting for a busy store."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from ingest.store import connect, data_version, migrations, open_store, pending_migrations, schema_version
from processlens.errors import StoreBusyError


def test_migrations_are_numbered_and_applied_once(db_path):
    versions = [v for v, _, _ in migrations()]
    assert versions == sorted(set(versions)) and versions[0] == 1
    with open_store(db_path) as con:
        assert schema_version(con) == versions[-1]
        assert pending_migrations(con) == []
    with open_store(db_path) as con:  # reopening applies nothing twice
        rows = con.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
    assert [r[0] for r in rows] == versions


def test_a_missing_middle_migration_is_applied(db_path, monkeypatch):
    """A store that got a later migration before an earlier one existed still gets the earlier one."""
    import ingest.store as store_module

    shipped = migrations()
    if len(shipped) < 3:
        pytest.skip("needs at least three migrations to leave a gap")
    gap = shipped[1][0]
    monkeypatch.setattr(store_module, "migrations", lambda: [m for m in shipped if m[0] != gap])
    with open_store(db_path) as con:
        assert gap not in {v for (v,) in con.execute("SELECT version FROM schema_migrations").fetchall()}
    monkeypatch.setattr(store_module, "migrations", lambda: shipped)
    with open_store(db_path) as con:
        assert pending_migrations(con) == []
        assert gap in {v for (v,) in con.execute("SELECT version FROM schema_migrations").fetchall()}


def test_read_only_open_of_a_missing_store_gives_an_empty_schema(tmp_path):
    with open_store(tmp_path / "absent.duckdb", read_only=True) as con:
        assert con.execute("SELECT count(*) FROM events").fetchone()[0] == 0
        assert data_version(con) == 0
    assert not (tmp_path / "absent.duckdb").exists()


def test_a_busy_store_makes_openers_wait_then_fail_with_a_hint(db_path):
    with open_store(db_path):
        pass
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import duckdb, sys, time
            con = duckdb.connect({str(db_path)!r})
            print("locked", flush=True)
            sys.stdin.readline()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(StoreBusyError) as err:
            connect(db_path, timeout=0.5)
        assert "in use by another process" in err.value.message and err.value.hint
    finally:
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=30)
    con = connect(db_path, timeout=5)  # released: opening works again
    con.close()


def test_migration_9_rebuilds_cases_without_the_case_id_index(db_path, monkeypatch):
    """A store from before migration 9 keeps its cases, events and the event_log view; the
    UNIQUE index on case_id is gone, and later loads still create each case id once."""
    import pyarrow as pa

    import ingest.store as store_module
    from ingest.loader import Batch, Loader
    from ingest.mapping import Mapping

    def load(con, cases: list[str], first_id: int) -> None:
        rows = pa.table({"id": [f"r{first_id + i}" for i in range(len(cases))], "case": cases,
                         "activity": ["A"] * len(cases),
                         "ts": [f"2024-01-01 00:00:{i:02d}" for i in range(len(cases))]})
        m = Mapping(case="case", activity="activity", timestamp="ts", record_id="id")
        Loader(con, "j", "S", "test", m, progress=False).run([Batch("_r", data=rows, location="x")])

    shipped = migrations()
    monkeypatch.setattr(store_module, "migrations", lambda: [m for m in shipped if m[0] < 9])
    with open_store(db_path) as con:
        load(con, ["c2", "c1", "c2", "c3"], 0)
        before = con.execute("SELECT * FROM event_log ORDER BY event_id").fetchall()
        cases_before = con.execute("SELECT * FROM cases ORDER BY case_key").fetchall()
        assert con.execute("SELECT count(*) FROM duckdb_constraints() WHERE table_name = 'cases' "
                           "AND constraint_type = 'UNIQUE'").fetchone()[0] == 1
    monkeypatch.setattr(store_module, "migrations", lambda: shipped)
    with open_store(db_path) as con:
        assert con.execute("SELECT * FROM event_log ORDER BY event_id").fetchall() == before
        assert con.execute("SELECT * FROM cases ORDER BY case_key").fetchall() == cases_before
        assert con.execute("SELECT count(*) FROM duckdb_constraints() WHERE table_name = 'cases' "
                           "AND constraint_type = 'UNIQUE'").fetchone()[0] == 0
        load(con, ["c3", "c4", "c1", "c4"], 100)
        n, distinct = con.execute("SELECT count(*), count(DISTINCT case_id) FROM cases").fetchone()
        assert (n, distinct) == (4, 4)

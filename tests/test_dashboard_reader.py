"""The dashboard's shared read-only connection: one open per burst of queries, closed when idle,
and handed over to a writer in another process that signals it waits (real processes, a real file)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import pandas as pd
import pytest

from dashboard.reader import SharedReader
from ingest.store import open_store, writer_waiting, writer_waiting_path

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def store(tmp_path):
    db = tmp_path / "store.duckdb"
    with open_store(db) as con:
        con.execute("CREATE TABLE marks (n INTEGER)")
        con.execute("INSERT INTO marks VALUES (1)")
    return db


WRITER = """
import sys, time
sys.path.insert(0, {root!r})
from ingest.store import connect
t0 = time.monotonic()
con = connect({db!r}, timeout=20)
con.execute({sql!r})
con.close()
print(f"{{time.monotonic() - t0:.3f}}", flush=True)
"""


def write_in_another_process(db, sql: str = "INSERT INTO marks VALUES (2)") -> subprocess.CompletedProcess:
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])
    return subprocess.run([sys.executable, "-c", textwrap.dedent(WRITER.format(root=root, db=str(db), sql=sql))],
                          capture_output=True, text=True, timeout=60)


def test_a_burst_of_queries_opens_the_file_once_and_each_cursor_has_its_own_tables(store):
    reader = SharedReader(store, linger=30)
    results: dict[int, int] = {}

    def query(i: int) -> None:
        with reader.cursor() as con:
            con.register("pl_selected", pd.DataFrame({"n": range(i)}))
            results[i] = con.execute("SELECT count(*) FROM pl_selected, marks").fetchone()[0]

    threads = [threading.Thread(target=query, args=(i,)) for i in range(1, 9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: i for i in range(1, 9)}
    assert reader.opened == 1 and reader.is_open
    reader.close()
    assert not reader.is_open


def test_the_file_is_closed_after_the_linger_time_so_writers_need_not_wait(store):
    reader = SharedReader(store, linger=0.3)
    with reader.cursor() as con:
        assert con.execute("SELECT count(*) FROM marks").fetchone()[0] == 1
    deadline = time.monotonic() + 10
    while reader.is_open and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not reader.is_open
    done = write_in_another_process(store)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) < 1.0  # it found the file free at once (no backoff rounds)
    with reader.cursor() as con:
        assert con.execute("SELECT count(*) FROM marks").fetchone()[0] == 2


def test_a_waiting_writer_gets_the_file_while_the_dashboard_keeps_querying(store):
    reader = SharedReader(store, linger=60, timeout=20)  # it would never close on its own
    seen: list[int] = []
    errors: list[Exception] = []
    stop = threading.Event()

    def dashboard() -> None:
        while not stop.is_set():
            try:
                with reader.cursor() as con:
                    seen.append(con.execute("SELECT count(*) FROM marks").fetchone()[0])
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)
            time.sleep(0.02)

    t = threading.Thread(target=dashboard)
    t.start()
    try:
        while not seen:
            time.sleep(0.02)
        assert reader.is_open
        done = write_in_another_process(store)
    finally:
        time.sleep(0.3)
        stop.set()
        t.join()
    assert done.returncode == 0, done.stderr
    assert not errors, errors
    assert seen[0] == 1 and seen[-1] == 2  # the dashboard went on reading before and after the write
    assert reader.opened >= 2  # it let go of the file for the writer and opened it again
    assert not writer_waiting(store) and not writer_waiting_path(store).exists()


def test_facts_about_the_store_are_read_once_per_open_handle_and_again_after_a_write(store):
    from dashboard.queries import table_exists
    from processlens import snapshot

    reader = SharedReader(store, linger=60, timeout=20)
    asked: list[int] = []

    def ask(con) -> bool:
        return snapshot.remember("test.asked", lambda: asked.append(1) or len(asked))

    with reader.cursor() as con:
        assert snapshot.is_frozen()
        con.register("extra", pd.DataFrame({"n": [1]}))  # a cursor's own relation is not a stored table
        assert not table_exists(con, "extra")
        assert ask(con) == 1
    with reader.cursor() as con:
        assert ask(con) == 1 and len(asked) == 1  # the same handle: answered from memory
        assert not table_exists(con, "extra")
    assert not snapshot.is_frozen()
    assert reader.opened == 1

    done = write_in_another_process(store, "CREATE TABLE extra (n INTEGER)")  # the reader lets go of the file
    assert done.returncode == 0, done.stderr
    with reader.cursor() as con:
        assert reader.opened == 2
        assert table_exists(con, "extra")  # nothing remembered from the handle before the write
        assert ask(con) == 2
    reader.close()

"""Loader guarantees: idempotent, atomic (also under SIGKILL), failed runs recorded, rows kept in case/time order."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow as pa
import pytest

from ingest.loader import Batch, Loader
from ingest.mapping import Mapping
from ingest.store import open_store

MAPPING = Mapping(case="case", activity="activity", timestamp="ts", record_id="id")


def table(ids: range, cases: int = 7) -> pa.Table:
    """Events in shuffled case order: case = id % cases, time grows with id."""
    ids = list(ids)
    return pa.table({
        "id": [f"r{i}" for i in ids],
        "case": [f"c{i % cases}" for i in ids],
        "activity": [f"A{i % 3}" for i in ids],
        "ts": [f"2024-01-01 00:{(i // 60) % 60:02d}:{i % 60:02d}" for i in ids],
    })


def batches(*tables: pa.Table, cursor_from: str | None = None):
    offset = 0
    for i, t in enumerate(tables):
        yield Batch(relation=f"_t{i}", data=t, location="memory", position_offset=offset,
                    cursor=str(t.column("id")[-1]) if cursor_from else None)
        offset += t.num_rows


def load(con, *tables: pa.Table, job: str = "job", cursor: bool = False):
    return Loader(con, job=job, source="S", kind="test", mapping=MAPPING, progress=False).run(
        batches(*tables, cursor_from="id" if cursor else None))


def test_idempotent_second_run_loads_nothing(store):
    first = load(store, table(range(50)), table(range(50, 80)))
    again = load(store, table(range(50)), table(range(50, 80)))
    assert first.rows_loaded == 80
    assert (again.rows_loaded, again.duplicates_skipped, again.rows_read) == (0, 80, 80)
    assert store.execute("SELECT count(*), count(DISTINCT record_id) FROM events").fetchone() == (80, 80)


def test_without_record_id_dedupe_uses_content_and_keeps_genuine_repeats(store):
    rows = pa.table({"case": ["c1", "c1", "c1"], "activity": ["A", "A", "B"], "ts": ["2024-01-01 10:00:00"] * 3})
    m = Mapping(case="case", activity="activity", timestamp="ts")
    first = Loader(store, "j", "S", "test", m, progress=False).run([Batch("_r", data=rows, location="x")])
    again = Loader(store, "j", "S", "test", m, progress=False).run([Batch("_r", data=rows, location="x")])
    assert first.rows_loaded == 3  # the two identical rows are both real events
    assert (again.rows_loaded, again.duplicates_skipped) == (0, 3)


def test_failed_run_leaves_nothing_and_is_recorded(store):
    load(store, table(range(10)), cursor=True)
    before = store.execute("SELECT count(*) FROM events").fetchone()[0]

    def broken():
        yield from batches(table(range(10, 20)), cursor_from="id")
        raise RuntimeError("source died half-way")

    with pytest.raises(RuntimeError):
        Loader(store, job="job", source="S", kind="test", mapping=MAPPING, progress=False).run(broken())
    assert store.execute("SELECT count(*) FROM events").fetchone()[0] == before
    assert store.execute("SELECT value FROM cursors WHERE job = 'job'").fetchall() == [("r9",)]
    status, error, loaded = store.execute(
        "SELECT status, error, rows_loaded FROM ingest_runs ORDER BY run_id DESC LIMIT 1").fetchone()
    assert status == "failed" and "source died half-way" in error and loaded == 0
    done = load(store, table(range(10, 20)), cursor=True)  # the next run completes it
    assert done.rows_loaded == 10 and done.cursor == "r19"


def test_cursor_and_run_row_commit_with_the_data(store):
    res = load(store, table(range(5)), cursor=True)
    run_row = store.execute("SELECT status, rows_loaded FROM ingest_runs WHERE run_id = ?", [res.run_id]).fetchone()
    cursor_row = store.execute("SELECT value, run_id FROM cursors WHERE job = 'job'").fetchone()
    assert run_row == ("succeeded", 5)
    assert cursor_row == ("r4", res.run_id)
    assert store.execute("SELECT DISTINCT run_id FROM events").fetchall() == [(res.run_id,)]


def test_rows_are_in_case_time_order_after_load(store):
    load(store, table(range(200), cases=13))
    rows = store.execute("SELECT case_key, ts, event_id FROM events").fetchall()  # physical order
    assert rows == sorted(rows)
    load(store, table(range(200, 400), cases=13))  # a big append is re-sorted too
    rows = store.execute("SELECT case_key, ts, event_id FROM events").fetchall()
    assert len(rows) == 400 and rows == sorted(rows)


def test_equal_timestamps_keep_source_order(store):
    t = pa.table({"id": ["x", "y", "z"], "case": ["c"] * 3, "activity": ["Z", "A", "M"], "ts": ["2024-01-01 10:00:00"] * 3})
    load(store, t)
    got = [r[0] for r in store.execute("SELECT activity FROM event_log ORDER BY ts, event_id").fetchall()]
    assert got == ["Z", "A", "M"]


def test_drop_folder_file_marked_only_with_its_data(store):
    def files(fail: bool):
        yield Batch("_f", data=table(range(3)), location="/drop/a.csv", file_sha256="aaa", file_size=10)
        if fail:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        Loader(store, "folder", "S", "folder", MAPPING, progress=False).run(files(True))
    assert store.execute("SELECT count(*) FROM ingested_files").fetchone()[0] == 0
    res = Loader(store, "folder", "S", "folder", MAPPING, progress=False).run(files(False))
    assert res.files == 1
    assert store.execute("SELECT job, path, sha256, run_id FROM ingested_files").fetchall() == [
        ("folder", "/drop/a.csv", "aaa", res.run_id)]


CHILD = textwrap.dedent("""
    import sys, time
    import pyarrow as pa
    sys.path.insert(0, {tests!r})
    from test_loader import MAPPING, table
    from ingest.loader import Batch, Loader
    from ingest.store import open_store

    def slow():
        yield Batch("_a", data=table(range(0, 500)), location="memory", cursor="r499")
        open({marker!r}, "w").close()   # the first batch is inserted, the transaction is open
        time.sleep(60)
        yield Batch("_b", data=table(range(500, 1000)), location="memory", position_offset=500, cursor="r999")

    with open_store({db!r}) as con:
        Loader(con, "crash", "S", "test", MAPPING, progress=False).run(slow())
""")


def test_sigkill_mid_load_leaves_the_store_as_before(tmp_path: Path, db_path: Path):
    with open_store(db_path) as con:
        load(con, table(range(1000, 1010)), job="other")
        before = con.execute("SELECT count(*), (SELECT count(*) FROM ingest_runs) FROM events").fetchone()
    marker = tmp_path / "inside"
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(tests=str(Path(__file__).parent), marker=str(marker), db=str(db_path)))
    proc = subprocess.Popen([sys.executable, str(script)], cwd=Path(__file__).parents[1])
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, "the loading process ended before the kill"
            assert time.monotonic() < deadline, "the loading process never reached the middle of its load"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    with open_store(db_path) as con:
        after = con.execute("SELECT count(*), (SELECT count(*) FROM ingest_runs) FROM events").fetchone()
        assert after == before
        assert con.execute("SELECT count(*) FROM cursors WHERE job = 'crash'").fetchone()[0] == 0
        res = Loader(con, "crash", "S", "test", MAPPING, progress=False).run(
            [Batch("_a", data=table(range(0, 500)), location="m", cursor="r499"),
             Batch("_b", data=table(range(500, 1000)), location="m", position_offset=500, cursor="r999")])
        assert res.rows_loaded == 1000 and res.cursor == "r999"


def test_a_run_that_outgrows_the_default_memory_cap_is_loaded_without_it(tmp_path, monkeypatch, capsys):
    """DuckDB cannot spill every buffer: when the default cap is too small the run is redone uncapped."""
    import ingest.loader as loader_module
    from ingest.api import ingest_file
    from ingest.store import open_store

    monkeypatch.delenv(loader_module.MEMORY_ENV, raising=False)
    monkeypatch.setattr(loader_module, "default_memory", lambda _bytes: "1MB")  # far too small for any real work
    path = tmp_path / "log.csv"
    path.write_text("case,activity,time,note\n" + "".join(
        f"c{i // 5},a{i % 5},2024-01-01 {i % 24:02d}:00:00,{'x' * 200}\n" for i in range(50_000)))
    with open_store(tmp_path / "s.duckdb") as con:
        imp = ingest_file(con, path)
        assert imp.result.status == "succeeded" and imp.result.rows_loaded == 50_000
        assert con.execute("SELECT count(*) FROM events").fetchone()[0] == 50_000
        failed = con.execute("SELECT count(*) FROM ingest_runs WHERE status = 'failed'").fetchone()[0]
    assert failed == 1 and "without the cap" in capsys.readouterr().err


def test_an_explicit_memory_cap_is_respected(tmp_path, monkeypatch):
    import pytest

    import ingest.loader as loader_module
    from ingest.api import ingest_file
    from ingest.store import open_store

    monkeypatch.setenv(loader_module.MEMORY_ENV, "1MB")
    path = tmp_path / "log.csv"
    path.write_text("case,activity,time,note\n" + "".join(
        f"c{i // 5},a{i % 5},2024-01-01 {i % 24:02d}:00:00,{'x' * 200}\n" for i in range(50_000)))
    with open_store(tmp_path / "s.duckdb") as con:
        with pytest.raises(loader_module.IngestMemoryError) as err:
            ingest_file(con, path)
        assert loader_module.MEMORY_ENV in err.value.hint
        assert con.execute("SELECT count(*) FROM events").fetchone()[0] == 0


def test_the_default_memory_cap_grows_with_the_input_and_stays_bounded():
    from ingest.loader import DEFAULT_MEMORY, SIZED_MEMORY_FLOOR, default_memory

    def mb(size: str) -> int:  # the caps are written as whole megabytes
        assert size.endswith("MB")
        return int(size[:-2]) << 20

    floor = SIZED_MEMORY_FLOOR
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert default_memory(None) == DEFAULT_MEMORY
    assert mb(default_memory(10 << 20)) == floor  # small files: the floor
    big = mb(default_memory(700 << 20))  # a 700 MB CSV: about 1.5 times its size
    assert big // (1 << 20) == max(floor, min(1050 << 20, ram // 8)) // (1 << 20)
    assert mb(default_memory(1 << 50)) <= ram // 8 + (1 << 20)  # never more than an eighth of memory


def test_case_ids_stay_unique_across_batches_runs_and_sources(store):
    """cases.case_id has no UNIQUE index (migration 9): the loader alone keeps each id once."""
    load(store, table(range(40)), table(range(40, 90), cases=11))  # the second batch adds c7..c10
    load(store, table(range(90, 120), cases=13))                     # a later run adds c11, c12
    other = Mapping(case="case", activity="activity", timestamp="ts", record_id="id")
    Loader(store, job="other", source="T", kind="test", mapping=other, progress=False).run(
        [Batch("_o", data=table(range(500, 530), cases=15), location="memory")])  # another source adds c13, c14
    n, distinct, keys = store.execute(
        "SELECT count(*), count(DISTINCT case_id), count(DISTINCT case_key) FROM cases").fetchone()
    assert n == distinct == keys == 15
    assert store.execute("SELECT count(*) FROM events e LEFT JOIN cases c USING (case_key) "
                         "WHERE c.case_id IS NULL").fetchone()[0] == 0


def test_case_attributes_come_from_the_cases_first_row_in_the_source(store):
    """Case attributes that differ between a case's rows are taken from its first row in the source
    (not its earliest event), also when the rows come out of time order and across batches."""
    rows = pa.table({
        "id": ["r0", "r1", "r2", "r3", "r4"],
        "case": ["c1", "c2", "c1", "c2", "c1"],
        "activity": ["A", "A", "B", "B", "C"],
        "ts": ["2024-01-01 10:00:00", "2024-01-01 09:00:00", "2024-01-01 08:00:00", "2024-01-01 11:00:00",
               "2024-01-01 12:00:00"],
        "case:tier": ["gold", None, "silver", "bronze", "iron"],
    })
    later = pa.table({"id": ["r5"], "case": ["c3"], "activity": ["A"], "ts": ["2024-01-02 10:00:00"],
                      "case:tier": ["tin"]})
    Loader(store, job="j", source="S", kind="test", mapping=MAPPING, progress=False).run(batches(rows, later))
    tiers = dict(store.execute("SELECT case_id, attrs->>'case:tier' FROM cases").fetchall())
    assert tiers == {"c1": "gold", "c2": None, "c3": "tin"}

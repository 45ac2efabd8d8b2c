"""SIGKILL in the middle of a load leaves the store exactly as it was; the rerun completes it.
Loading the same file twice loads nothing the second time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from ingest.store import open_store

pytestmark = pytest.mark.slow

BIG_ROWS = 2_000_000
TABLES = ["events", "cases", "activities", "sources", "ingest_runs", "rejects", "cursors"]


def generate_csv(path: Path, rows: int, offset: int = 0) -> None:
    """An order-to-cash-like log written by DuckDB's COPY (seconds for millions of rows)."""
    con = duckdb.connect()
    con.execute(
        f"""
        COPY (
          SELECT 'SO-' || lpad(((i + {offset}) // 8)::VARCHAR, 8, '0') AS "Order Number",
                 ['Create Order', 'Check Credit', 'Approve Order', 'Pick Goods', 'Pack Goods', 'Ship Goods',
                  'Create Invoice', 'Close Order'][(i % 8) + 1] AS "Step",
                 strftime(TIMESTAMP '2023-01-01' + to_seconds((i + {offset}) * 41), '%Y-%m-%d %H:%M:%S') AS "Completed At",
                 'user' || (i % 37) AS "Who",
                 round((i % 997) * 1.25, 2) AS amount
          FROM range({rows}) t(i)
        ) TO '{path}' (HEADER, DELIMITER ',')
        """
    )
    con.close()


def snapshot(db: Path) -> dict[str, object]:
    """Row counts of every store table and a checksum of the events table's content."""
    with open_store(db, read_only=True) as con:
        snap: dict[str, object] = {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in TABLES}
        snap["events_md5"] = con.execute(
            "SELECT md5(coalesce(string_agg(concat_ws('|', event_id, case_key, activity_id, ts, start_ts, resource, "
            "source_id, record_id, position, run_id, attrs), chr(10) ORDER BY event_id), '')) FROM events"
        ).fetchall()[0][0]
        snap["data_version"] = con.execute("SELECT max(value) FROM store_meta WHERE key = 'data_version'").fetchall()[0][0]
    return snap


def cli(db: Path, *args: str) -> list[str]:
    return [sys.executable, "-c", "from processlens.cli import main; main()", "--db", str(db), *args]


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to watch the loader's progress")
def test_sigkill_mid_load_leaves_store_as_before_and_rerun_completes(tmp_path):
    db = tmp_path / "store.duckdb"
    small, big = tmp_path / "small.csv", tmp_path / "big.csv"
    generate_csv(small, 4_000)
    generate_csv(big, BIG_ROWS, offset=10_000_000)

    # a store with data in it; a second import of the same file loads nothing
    subprocess.run(cli(db, "ingest", "file", str(small), "--no-progress"), check=True, capture_output=True)
    again = subprocess.run(cli(db, "ingest", "file", str(small), "--json"), check=True, capture_output=True, text=True)
    assert '"rows_loaded": 0' in again.stdout and '"duplicates_skipped": 4000' in again.stdout
    before = snapshot(db)
    assert before["events"] == 4_000

    proc = subprocess.Popen(cli(db, "ingest", "file", str(big), "--no-progress"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # wait until the loader has done real work (CPU time beyond interpreter start-up)
        deadline = time.monotonic() + 300
        while proc.poll() is None and cpu_seconds(proc.pid) < 2.5 and time.monotonic() < deadline:
            time.sleep(0.05)
        if proc.poll() is not None:
            pytest.skip("the load finished before it could be killed (machine too fast for this file size)")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL

    assert snapshot(db) == before, "a killed load must leave no trace"

    rerun = subprocess.run(cli(db, "ingest", "file", str(big), "--json"), capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr
    after = snapshot(db)
    assert after["events"] == before["events"] + BIG_ROWS
    with open_store(db, read_only=True) as con:
        statuses = con.execute("SELECT status, rows_loaded FROM ingest_runs ORDER BY run_id").fetchall()
        assert statuses == [("succeeded", 4_000), ("succeeded", 0), ("succeeded", BIG_ROWS)]
        # the old data is untouched by the crash and the rerun
        assert con.execute("SELECT count(*) FROM events WHERE run_id = 1").fetchall()[0][0] == 4_000

"""The shortcuts of a first load give the same store as the long way.

- text columns are trimmed only when some value has edge spaces (one scan decides per column);
- rows that already come in case/time order are written as they are, others are sorted;
- the mapped rows keep only what varies (the rest is a view), so rejects keep their lines.
"""

from __future__ import annotations

import random
from pathlib import Path

import duckdb
import pytest

from ingest.api import ingest_file
from ingest.loader import in_case_order
from ingest.store import open_store

HEADER = "case,activity,timestamp,resource,amount"


def _rows(n_cases: int, seed: int = 7) -> list[tuple[str, str, str, str, str]]:
    rnd = random.Random(seed)
    rows = []
    for c in range(n_cases):
        for i, act in enumerate(["Receive", "Check", "Approve", "Ship"][: rnd.randint(1, 4)]):
            ts = f"2024-03-{1 + c % 27:02d} {8 + i:02d}:{rnd.randint(0, 59):02d}:00"
            rows.append((f"C{c:04d}", act, ts, f"user{rnd.randint(1, 5)}", str(rnd.randint(1, 900))))
    return rows


def _write(path: Path, rows) -> Path:
    path.write_text(HEADER + "\n" + "\n".join(",".join(r) for r in rows) + "\n", encoding="utf-8")
    return path


def _events(db: Path) -> list[tuple]:
    """Every stored event by content, and the store's physical row order."""
    with open_store(db) as con:
        content = con.execute(
            """SELECT c.case_id, a.name, e.ts, e.resource, e.position, CAST(e.attrs AS VARCHAR)
               FROM events e JOIN cases c USING (case_key) JOIN activities a USING (activity_id)
               ORDER BY e.position"""
        ).fetchall()
        physical = [r[0] for r in con.execute("SELECT event_id FROM events ORDER BY rowid").fetchall()]
        layout = [r[0] for r in con.execute("SELECT event_id FROM events ORDER BY case_key, ts, event_id").fetchall()]
    return content, physical, layout


def _load(tmp_path: Path, name: str, rows) -> tuple:
    db = tmp_path / f"{name}.duckdb"
    with open_store(db) as con:
        ingest_file(con, _write(tmp_path / f"{name}.csv", rows), progress=False)
    return _events(db)


def test_rows_in_case_order_are_stored_as_given_and_in_the_stores_layout(tmp_path):
    rows = _rows(300)
    content, physical, layout = _load(tmp_path, "ordered", rows)
    assert len(content) == len(rows)
    assert physical == layout  # the layout a sort would have made


@pytest.mark.parametrize("shuffle", ["time order", "random"])
def test_rows_out_of_case_order_are_sorted_into_the_same_events(tmp_path, shuffle):
    rows = _rows(300)
    ordered, _, _ = _load(tmp_path, "ordered", rows)
    mixed = sorted(rows, key=lambda r: r[2]) if shuffle == "time order" else random.Random(3).sample(rows, len(rows))
    content, physical, layout = _load(tmp_path, "mixed", mixed)
    assert physical == layout
    # the same events, only their source positions differ
    assert sorted(r[:4] + r[5:] for r in content) == sorted(r[:4] + r[5:] for r in ordered)


def test_in_case_order_checks_runs_and_time():
    con = duckdb.connect()

    def verdict(rows):
        con.execute("CREATE OR REPLACE TABLE t (case_id VARCHAR, ts TIMESTAMP, position BIGINT)")
        con.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
        return in_case_order(con, "t")

    day = "2024-01-01 0{}:00:00"
    assert verdict([("a", day.format(1), 0), ("a", day.format(2), 1), ("b", day.format(1), 2)])
    assert verdict([("a", day.format(1), 0), ("a", day.format(1), 1)])  # equal times keep source order
    assert not verdict([("a", day.format(2), 0), ("a", day.format(1), 1)])  # time goes back
    assert not verdict([("a", day.format(1), 0), ("b", day.format(1), 1), ("a", day.format(2), 2)])  # split case
    # rows read out of position order are not taken as ordered (they get sorted), whatever their content
    assert not verdict([("b", day.format(1), 2), ("a", day.format(2), 1), ("a", day.format(1), 0)])
    # a known number of cases is used as given: one run per case is the test
    con.execute("CREATE OR REPLACE TABLE t (case_id VARCHAR, ts TIMESTAMP, position BIGINT)")
    con.execute("INSERT INTO t VALUES ('a', '2024-01-01', 0), ('b', '2024-01-01', 1)")
    assert in_case_order(con, "t", cases=2) and not in_case_order(con, "t", cases=3)


def test_edge_spaces_anywhere_in_a_column_are_trimmed(tmp_path):
    rows = _rows(200)
    # padding only far down the file, in the case, activity, time and resource columns
    i = len(rows) - 3
    c, a, ts, r, amt = rows[i]
    rows[i] = (f"  {c}", f"{a} ", f" {ts} ", f" {r}", amt)
    db = tmp_path / "padded.duckdb"
    with open_store(db) as con:
        res = ingest_file(con, _write(tmp_path / "padded.csv", rows), progress=False).result
        assert res.rows_rejected == 0
        got = con.execute(
            """SELECT c.case_id, a.name, e.ts, e.resource FROM events e JOIN cases c USING (case_key)
               JOIN activities a USING (activity_id) WHERE e.position = ?""", [i]).fetchone()
        assert (got[0], got[1], str(got[2]), got[3]) == (c, a, ts, r)
        assert con.execute("SELECT count(*) FROM cases WHERE case_id <> trim(case_id)").fetchone()[0] == 0


def test_padded_day_first_timestamps_parse(tmp_path):
    # a strptime format (not ISO) needs the trim; unpadded values of the same column parse too
    path = tmp_path / "dayfirst.csv"
    path.write_text(HEADER + "\nA,Start,31.01.2024 08:00,u1,1\nA,End, 31.01.2024 09:30 ,u1,2\n", encoding="utf-8")
    with open_store(tmp_path / "d.duckdb") as con:
        res = ingest_file(con, path, progress=False).result
        assert (res.rows_loaded, res.rows_rejected) == (2, 0)
        assert [str(r[0]) for r in con.execute("SELECT ts FROM events ORDER BY position").fetchall()] == [
            "2024-01-31 08:00:00", "2024-01-31 09:30:00"]


def test_rejects_keep_their_line_and_good_rows_their_position(tmp_path):
    rows = _rows(50)
    bad = 17
    rows[bad] = (rows[bad][0], rows[bad][1], "not a time", rows[bad][3], rows[bad][4])
    with open_store(tmp_path / "r.duckdb") as con:
        ingest_file(con, _write(tmp_path / "r.csv", rows), progress=False)
        line, field, reason = con.execute("SELECT line, field, reason FROM rejects").fetchone()
        assert (line, field) == (bad + 2, "timestamp") and "not a time" in reason
        positions = [r[0] for r in con.execute("SELECT position FROM events ORDER BY position").fetchall()]
        assert positions == [p for p in range(len(rows)) if p != bad]

"""Property tests: whatever small log goes in (odd ids, unicode, delimiters, quotes, equal
timestamps) comes out of the store identical: case ids, activities, UTC times, per-case order."""

from __future__ import annotations

import csv
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.api import ingest_file
from ingest.store import migrate

# printable text without control characters; ids are trimmed by the loader, so no outer blanks
TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=12).map(str.strip).filter(bool)
IDS = st.one_of(st.sampled_from(["NA", "007", "null", "N/A", "0", "1e3", "a,b", 'say "x"', "é😀", "-", "TRUE"]), TEXT)
BASE = datetime(2024, 1, 1)
TIMES = st.one_of(
    st.sampled_from([BASE, BASE + timedelta(hours=1)]),  # many ties
    st.datetimes(min_value=datetime(1950, 1, 1), max_value=datetime(2090, 12, 31)),
)
EVENTS = st.lists(st.tuples(IDS, IDS, TIMES), min_size=1, max_size=25)


def fresh_store() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    migrate(con)
    return con


def expected_traces(rows: list[tuple[str, str, datetime]]) -> dict[str, list[tuple[str, datetime]]]:
    """Per case, events by time; equal times keep file order (pm4py's order)."""
    out: dict[str, list[tuple[int, str, datetime]]] = {}
    for pos, (case, act, ts) in enumerate(rows):
        out.setdefault(case, []).append((pos, act, ts))
    return {c: [(a, t) for _p, a, t in sorted(evs, key=lambda e: (e[2], e[0]))] for c, evs in out.items()}


def stored_traces(con) -> dict[str, list[tuple[str, datetime]]]:
    out: dict[str, list[tuple[str, datetime]]] = {}
    for case, act, ts in con.execute("SELECT case_id, activity, ts FROM event_log ORDER BY case_id, ts, event_id").fetchall():
        out.setdefault(case, []).append((act, ts))
    return out


def load(path: Path, **opts) -> dict[str, list[tuple[str, datetime]]]:
    con = fresh_store()
    try:
        res = ingest_file(con, path, case="case", activity="activity", timestamp="timestamp", progress=False, **opts).result
        assert res.rows_rejected == 0
        return stored_traces(con)
    finally:
        con.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=EVENTS, sep=st.sampled_from([",", ";", "\t"]), micro=st.booleans())
def test_csv_round_trip(rows, sep, micro):
    if not micro:
        rows = [(c, a, t.replace(microsecond=0)) for c, a, t in rows]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "log.csv"
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, delimiter=sep)
            w.writerow(["case", "activity", "timestamp"])
            w.writerows((c, a, t.isoformat(sep=" ")) for c, a, t in rows)
        assert load(path) == expected_traces(rows)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=EVENTS, zone=st.sampled_from([None, "UTC", "Europe/Amsterdam", "America/Sao_Paulo"]))
def test_parquet_round_trip(rows, zone):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "log.parquet"
        if zone is None:
            times = pa.array([t for _c, _a, t in rows], type=pa.timestamp("us"))
            expected_rows = rows
        else:
            from zoneinfo import ZoneInfo

            aware = [t.replace(tzinfo=UTC).astimezone(ZoneInfo(zone)) for _c, _a, t in rows]
            times = pa.array(aware, type=pa.timestamp("us", tz=zone))
            expected_rows = rows
        pq.write_table(pa.table({"case": [r[0] for r in rows], "activity": [r[1] for r in rows], "timestamp": times}), path)
        assert load(path) == expected_traces(expected_rows)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=EVENTS)
def test_second_import_of_any_log_loads_nothing(rows):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "log.csv"
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["case", "activity", "timestamp"])
            w.writerows((c, a, t.isoformat(sep=" ")) for c, a, t in rows)
        con = fresh_store()
        try:
            kw = dict(case="case", activity="activity", timestamp="timestamp", progress=False)
            first = ingest_file(con, path, **kw).result
            second = ingest_file(con, path, **kw).result
            assert (first.rows_loaded, second.rows_loaded, second.duplicates_skipped) == (len(rows), 0, len(rows))
        finally:
            con.close()

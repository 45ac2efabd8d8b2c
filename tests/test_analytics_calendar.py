"""Working-time durations on hand-made cases, in Python and in SQL through the whole stack."""

from __future__ import annotations

from datetime import datetime

import pytest

from analytics import BusinessCalendar, cases, dfg
from processlens.errors import ConfigError

OFFICE = dict(workdays=["Mon", "Tue", "Wed", "Thu", "Fri"], hours=["09:00-17:00"])
# (case, start UTC, end UTC, calendar kwargs, expected working seconds) — worked out by hand
CASES = [
    ("same-day", "2025-03-03 10:00", "2025-03-03 12:30", {}, 2.5 * 3600),
    ("over-weekend", "2025-03-07 16:00", "2025-03-10 10:00", {}, 2 * 3600),
    ("weekend-only", "2025-03-08 10:00", "2025-03-09 18:00", {}, 0),
    ("before-after-hours", "2025-03-03 08:00", "2025-03-03 20:00", {}, 8 * 3600),
    ("holiday", "2025-03-03 16:00", "2025-03-05 10:00", {"holidays": ["2025-03-04"]}, 2 * 3600),
    ("lunch-break", "2025-03-03 11:00", "2025-03-03 14:00", {"hours": ["08:00-12:00", "13:00-17:00"]}, 2 * 3600),
    ("berlin-winter", "2025-03-03 08:00", "2025-03-03 16:00", {"timezone": "Europe/Berlin"}, 8 * 3600),
    ("berlin-summer", "2025-03-31 07:00", "2025-03-31 15:00", {"timezone": "Europe/Berlin"}, 8 * 3600),
    ("full-week", "2025-03-03 09:00", "2025-03-10 09:00", {}, 5 * 8 * 3600),
    ("saturday-shift", "2025-03-08 10:00", "2025-03-08 11:00", {"workdays": ["Sat"]}, 3600),
]


def cal(kwargs: dict) -> BusinessCalendar:
    return BusinessCalendar(**{**OFFICE, **kwargs})


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize("name,start,end,kwargs,expected", CASES, ids=[c[0] for c in CASES])
def test_python_working_seconds(name, start, end, kwargs, expected):
    assert cal(kwargs).working_seconds(ts(start), ts(end)) == expected
    assert cal(kwargs).working_seconds(ts(end), ts(start)) == -expected


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from ingest.api import ingest_file
    from ingest.store import open_store

    folder = tmp_path_factory.mktemp("cal")
    lines = ["case,activity,timestamp"]
    for name, start, end, _, _ in CASES:
        lines += [f"{name},Receive,{start}:00", f"{name},Decide,{end}:00"]
    csv = folder / "hand.csv"
    csv.write_text("\n".join(lines) + "\n")
    db = folder / "store.duckdb"
    with open_store(db) as con:
        ingest_file(con, csv, case="case", activity="activity", timestamp="timestamp", progress=False)
    return db


@pytest.mark.parametrize("name,start,end,kwargs,expected", CASES, ids=[c[0] for c in CASES])
def test_sql_working_time_in_case_table_and_map(store, name, start, end, kwargs, expected):
    from ingest.store import open_store

    with open_store(store, read_only=True) as con:
        table = cases(con, calendar=cal(kwargs)).set_index("case_id")
        assert table.loc[name, "duration_seconds"] == pytest.approx(expected, abs=1e-6)
        calendar_time = cases(con).set_index("case_id").loc[name, "duration_seconds"]
        assert calendar_time == (ts(end) - ts(start)).total_seconds()
        from analytics import Filter

        edge = dfg(con, Filter(case_ids=[name]), calendar=cal(kwargs)).edges.iloc[0]
        assert edge.mean_seconds == pytest.approx(expected, abs=1e-6)


def test_sql_equals_python_on_many_random_pairs(store):
    import random

    from ingest.store import open_store

    c = BusinessCalendar(timezone="America/New_York", hours=["08:30-12:00", "12:45-17:15"], holidays=["2025-03-17"])
    rnd = random.Random(5)
    base = datetime(2025, 3, 1)
    pairs = []
    for _ in range(300):
        a = base.timestamp() + rnd.uniform(0, 40 * 86400)
        b = a + rnd.uniform(0, 9 * 86400)
        pairs.append((datetime.fromtimestamp(a).replace(microsecond=0), datetime.fromtimestamp(b).replace(microsecond=0)))
    with open_store(store, read_only=True) as con:
        expr = c.working_seconds_sql(con, "a", "b", until=datetime(2025, 6, 1))
        values = ", ".join(f"(TIMESTAMP '{a}', TIMESTAMP '{b}')" for a, b in pairs)
        got = [r[0] for r in con.execute(f"SELECT {expr} FROM (VALUES {values}) v(a, b)").fetchall()]
    assert got == [pytest.approx(c.working_seconds(a, b), abs=1e-6) for a, b in pairs]


@pytest.mark.parametrize("kwargs,match", [
    ({"hours": ["9-17"]}, "HH:MM"),
    ({"hours": ["17:00-09:00"]}, "end before"),
    ({"timezone": "Mars/Olympus"}, "time zone"),
    ({"workdays": ["Funday"]}, "working day"),
    ({"holidays": ["25/12/2025"]}, "ISO date"),
])
def test_bad_calendars_are_named(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        BusinessCalendar(**kwargs)

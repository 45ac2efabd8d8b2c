"""Incremental maintenance: after appends the aggregates equal a rebuild, and only touched cases are redone."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from analytics import dfg, is_fresh, rebuild, refresh, variants

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import synthetic  # noqa: E402

N_CASES, SEED = 2000, 11
NOW0 = synthetic.EPOCH + timedelta(days=200)


def snapshot(con) -> tuple[pd.DataFrame, pd.DataFrame]:
    e = con.execute("SELECT * FROM an_edges ORDER BY case_key, src_event_id").df()
    c = con.execute("SELECT * FROM an_cases ORDER BY case_key").df()
    return e, c


@pytest.fixture
def world(store):
    synthetic.write(store, synthetic.generate(N_CASES, SEED, NOW0))
    return store


def test_refresh_after_append_equals_full_rebuild(world):
    con = world
    assert not is_fresh(con)
    assert refresh(con).mode == "full"
    assert refresh(con).mode == "none" and is_fresh(con)
    new_now = synthetic.now_for_append(N_CASES, SEED, NOW0, 0.01)
    added = synthetic.append(con, N_CASES, SEED, NOW0, new_now)
    assert added > 0 and not is_fresh(con)
    touched = con.execute("SELECT count(DISTINCT case_key) FROM events WHERE run_id = 2").fetchall()[0][0]
    r = refresh(con)
    assert r.mode == "incremental" and r.touched_cases == touched and r.new_events == added
    assert is_fresh(con)
    inc = snapshot(con)
    rebuild(con)
    full = snapshot(con)
    pd.testing.assert_frame_equal(inc[0], full[0])
    pd.testing.assert_frame_equal(inc[1], full[1])
    a, b = dfg(con, use_aggregates=True).edges, dfg(con, use_aggregates=False).edges
    pd.testing.assert_frame_equal(a.drop(columns="cases"), b.drop(columns="cases"))
    assert list(a.cases) == list(b.cases)
    pd.testing.assert_frame_equal(variants(con, use_aggregates=True), variants(con, use_aggregates=False))


def test_late_event_inside_a_case_is_folded_in(world):
    con = world
    refresh(con)
    # an event that arrives late but happened between the first two events of case 1
    first, second = con.execute(
        "SELECT ts FROM events WHERE case_key = 1 ORDER BY ts, event_id LIMIT 2").fetchall()
    late = first[0] + (second[0] - first[0]) / 2
    con.execute(
        "INSERT INTO events SELECT (SELECT max(event_id) + 1 FROM events), 1, 3, ?, NULL, 'complete', 'x', 1, 'late', 0, 9, NULL",
        [late],
    )
    assert refresh(con).mode == "incremental"
    seq = con.execute("SELECT trace FROM an_variants WHERE variant_id = (SELECT variant_id FROM an_cases WHERE case_key = 1)").fetchall()[0][0]
    assert seq[1] == 3
    inc = snapshot(con)
    rebuild(con)
    pd.testing.assert_frame_equal(inc[0], snapshot(con)[0])


def test_deleted_events_force_a_rebuild(world):
    con = world
    refresh(con)
    key = con.execute("SELECT min(case_key) FROM events").fetchall()[0][0]
    con.execute("DELETE FROM events WHERE case_key = ?", [key])
    assert not is_fresh(con)
    assert refresh(con).mode == "full"
    assert con.execute("SELECT count(*) FROM an_cases WHERE case_key = ?", [key]).fetchall()[0][0] == 0


def test_stale_aggregates_are_not_used(world):
    con = world
    refresh(con)
    before = dfg(con).cases
    con.execute("INSERT INTO events SELECT max(event_id) + 1, 1, 1, TIMESTAMP '2031-01-01', NULL, 'complete', 'x', 1, "
                "'new', 0, 9, NULL FROM events")
    con.execute("INSERT INTO cases VALUES (999999, 'NEW', NULL, 9)")
    con.execute("INSERT INTO events SELECT max(event_id) + 1, 999999, 1, TIMESTAMP '2031-01-01', NULL, 'complete', 'x', 1, "
                "'new2', 0, 9, NULL FROM events")
    assert dfg(con).cases == before + 1  # computed from events, since the aggregates are behind
    assert dfg(con).start_activities == dfg(con, use_aggregates=False).start_activities

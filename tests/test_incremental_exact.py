"""An incremental refresh gives exactly what a full rebuild gives: first-level aggregates, the
per-edge statistics (counts, min/median/p90/max equal to DuckDB's quantile_cont over all pairs)
and the DFG, variants and case table, after appends that extend cases, start new ones, land
before a case's last event, and tie on timestamps."""

from __future__ import annotations

import random
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from analytics import Filter, cases, dfg, incremental, is_fresh, rebuild, refresh, variants
from analytics.incremental import case_rows_fresh, edge_stats_fresh
from analytics.queries import CASE_COLUMNS, CASE_ROW_COLUMNS, EDGE_COLUMNS, cases_sql, edges_sql

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import synthetic  # noqa: E402

N_CASES, SEED = 1500, 5
NOW0 = synthetic.EPOCH + timedelta(days=150)
FIXED_NOW = datetime(2031, 1, 1)


def expected_first_level(con) -> tuple[pd.DataFrame, pd.DataFrame]:
    """an_edges and an_cases as a rebuild would write them, computed straight from the events."""
    e = con.execute(f"SELECT {EDGE_COLUMNS} FROM ({edges_sql('events')}) ORDER BY case_key, src_event_id").df()
    c = con.execute(f"SELECT {CASE_COLUMNS} FROM ({cases_sql('events')}) ORDER BY case_key").df()
    return e, c


def expected_edge_stats(con) -> pd.DataFrame:
    return con.execute(
        """
        SELECT src_id, tgt_id, count(*) AS frequency, count(*) FILTER (WHERE first_in_case) AS cases,
               sum(epoch_us(tgt_ts) - epoch_us(src_ts)) AS total_us, min(d) AS min_seconds,
               quantile_cont(d, 0.5) AS median_seconds, quantile_cont(d, 0.9) AS p90_seconds, max(d) AS max_seconds
        FROM (SELECT *, epoch(tgt_ts - src_ts) AS d FROM an_edges) x
        GROUP BY src_id, tgt_id ORDER BY src_id, tgt_id
        """
    ).df()


def assert_matches_rebuild(con) -> None:
    assert is_fresh(con) and edge_stats_fresh(con) and case_rows_fresh(con)
    rows = con.execute("SELECT * FROM an_case_rows ORDER BY case_key").df()
    want_rows = con.execute(
        f"SELECT {CASE_ROW_COLUMNS} FROM (SELECT * FROM ({cases_sql('events')}) s JOIN cases USING (case_key)) "
        "ORDER BY case_key").df()
    pd.testing.assert_frame_equal(rows, want_rows)
    edges = con.execute(f"SELECT {EDGE_COLUMNS} FROM an_edges ORDER BY case_key, src_event_id").df()
    summaries = con.execute(f"SELECT {CASE_COLUMNS} FROM an_cases ORDER BY case_key").df()
    want_edges, want_cases = expected_first_level(con)
    pd.testing.assert_frame_equal(edges, want_edges)
    pd.testing.assert_frame_equal(summaries, want_cases)
    traces = con.execute(
        "SELECT c.case_key, v.trace FROM an_cases c JOIN an_variants v USING (variant_id) ORDER BY case_key").fetchall()
    want = con.execute(
        "SELECT case_key, array_agg(activity_id ORDER BY ts, event_id) FROM events GROUP BY case_key ORDER BY case_key"
    ).fetchall()
    assert traces == want
    stats = con.execute(
        "SELECT src_id, tgt_id, frequency, cases, total_us, min_seconds, median_seconds, p90_seconds, max_seconds "
        "FROM an_edge_stats ORDER BY src_id, tgt_id").df()
    want_stats = expected_edge_stats(con)
    assert stats.drop(columns="total_us").astype(float).values.tolist() == \
        want_stats.drop(columns="total_us").astype(float).values.tolist()  # exact, quantiles included
    assert [int(x) for x in stats.total_us] == [int(x) for x in want_stats.total_us]
    hist = con.execute("SELECT src_id, tgt_id, sum(n) FROM an_edge_hist GROUP BY ALL ORDER BY ALL").fetchall()
    assert [tuple(r) for r in hist] == [tuple(r) for r in want_stats[["src_id", "tgt_id", "frequency"]].values.tolist()]
    assert_queries_equal_event_scan(con)


def assert_queries_equal_event_scan(con) -> None:
    """The three queries on the maintained aggregates equal the same queries computed from the events."""
    fast, slow = dfg(con, use_aggregates=True), dfg(con, use_aggregates=False)
    pd.testing.assert_frame_equal(fast.edges, slow.edges, check_exact=False, rtol=1e-12)
    assert (fast.start_activities, fast.end_activities, fast.activities, fast.cases) == \
        (slow.start_activities, slow.end_activities, slow.activities, slow.cases)
    pd.testing.assert_frame_equal(variants(con, use_aggregates=True), variants(con, use_aggregates=False))
    for flt in (None, Filter(variants_top=3)):
        a = cases(con, flt, now=FIXED_NOW, use_aggregates=True).sort_values("case_id", ignore_index=True)
        b = cases(con, flt, now=FIXED_NOW, use_aggregates=False).sort_values("case_id", ignore_index=True)
        pd.testing.assert_frame_equal(a, b)


def add_event(con, case_key: int, activity_id: int, ts: datetime) -> None:
    if not con.execute("SELECT count(*) FROM cases WHERE case_key = ?", [case_key]).fetchall()[0][0]:
        con.execute("INSERT INTO cases VALUES (?, ?, NULL, 9)", [case_key, f"X-{case_key}"])
    con.execute(
        "INSERT INTO events SELECT coalesce(max(event_id), -1) + 1, ?, ?, ?, NULL, 'complete', 'late_r', 2, "
        "'m-' || (coalesce(max(event_id), -1) + 1), 0, 9, NULL FROM events", [case_key, activity_id, ts])


@pytest.fixture
def world(store):
    synthetic.write(store, synthetic.generate(N_CASES, SEED, NOW0))
    assert refresh(store).mode == "full"
    return store


def test_successive_appends_equal_a_rebuild(world):
    con = world
    old = NOW0
    for fraction in (0.01, 0.02, 0.005):
        new = synthetic.now_for_append(N_CASES, SEED, old, fraction)
        added = synthetic.append(con, N_CASES, SEED, old, new)
        r = refresh(con)
        assert r.mode == "incremental" and r.new_events == added and r.rewritten_cases == 0
        assert_matches_rebuild(con)
        old = new
    before = (dfg(con).edges, variants(con), cases(con, now=FIXED_NOW).sort_values("case_id", ignore_index=True))
    assert rebuild(con).mode == "full"
    after = (dfg(con).edges, variants(con), cases(con, now=FIXED_NOW).sort_values("case_id", ignore_index=True))
    pd.testing.assert_frame_equal(before[0], after[0], check_exact=False, rtol=1e-12)
    pd.testing.assert_frame_equal(before[1], after[1])
    pd.testing.assert_frame_equal(before[2], after[2])


def test_equal_timestamps_late_events_and_new_cases(world):
    con = world
    last = con.execute(
        "SELECT case_key, max(ts), min(ts) FROM events GROUP BY case_key HAVING count(*) > 2 ORDER BY case_key LIMIT 4"
    ).fetchall()
    (k1, end1, _), (k2, end2, start2), (k3, end3, _), (k4, _, start4) = last
    add_event(con, k1, 3, end1)  # same time as the last event: comes after it (source order)
    add_event(con, k1, 3, end1)  # and a repeat of the same pair at the same time
    add_event(con, k2, 5, start2)  # same time as the first event: lands inside the case
    add_event(con, k3, 7, end3 + timedelta(hours=1))
    add_event(con, k4, 2, start4 - timedelta(days=1))  # before everything the case had
    add_event(con, 10_000_001, 1, datetime(2025, 3, 1))  # a new case, two events at the same time
    add_event(con, 10_000_001, 2, datetime(2025, 3, 1))
    r = refresh(con)
    assert r.mode == "incremental" and r.touched_cases == 5 and r.rewritten_cases == 2
    assert_matches_rebuild(con)
    seq = con.execute("SELECT trace FROM an_variants WHERE variant_id = (SELECT variant_id FROM an_cases "
                      "WHERE case_key = ?)", [k1]).fetchall()[0][0]
    assert seq[-2:] == [3, 3]


@pytest.mark.parametrize(("seed", "keep_around"), [(1, 3), (2, 0), (3, 1)])
def test_random_appends_with_many_ties(store, seed, keep_around, monkeypatch):
    """Random batches: events at the same time as, just after or before an existing one, and new cases
    (with few buckets kept around the quantiles, so they often move out of the kept ones)."""
    monkeypatch.setattr(incremental, "KEEP_AROUND", keep_around)
    rng = random.Random(seed)
    synthetic.write(store, synthetic.generate(40, seed))
    con = store
    assert refresh(con).mode == "full"
    results = []
    for batch in range(8):
        for _ in range(rng.randint(1, 10)):
            if rng.random() < 0.15:
                key, ts = 30_000 + batch * 10 + rng.randint(0, 2), synthetic.EPOCH + timedelta(hours=rng.randint(0, 3))
            else:
                key, ts = con.execute(
                    "SELECT case_key, ts FROM events ORDER BY event_id LIMIT 1 OFFSET ?",
                    [rng.randrange(con.execute("SELECT count(*) FROM events").fetchall()[0][0])]).fetchall()[0]
                ts += timedelta(hours=rng.choice([0, 0, 0, 1, -1, 48]))
            add_event(con, key, rng.randint(1, 6), ts)
        results.append(refresh(con))
        assert_matches_rebuild(con)
    assert any(r.mode == "incremental" and r.rewritten_cases for r in results)
    assert any(r.mode == "incremental" and r.touched_cases > r.rewritten_cases for r in results)


def test_second_level_tables_from_before_they_existed_are_built_on_refresh(world):
    con = world
    con.execute("DELETE FROM an_edge_stats")
    con.execute("DELETE FROM an_case_rows")
    con.execute("DELETE FROM an_state WHERE key IN ('an_edge_stats', 'an_case_rows')")
    assert not edge_stats_fresh(con) and not case_rows_fresh(con) and is_fresh(con)
    assert refresh(con).mode == "none"
    assert_matches_rebuild(con)


def _subsecond_store(path: Path, durations: list[float], first_case: int = 0) -> None:
    """Append cases A → B whose one pair lasts each of ``durations`` seconds (millisecond timestamps)."""
    from ingest.api import ingest_file
    from ingest.store import open_store

    csv = path.with_name(f"subsecond_{first_case}.csv")
    t0 = datetime(2024, 1, 1, 10)
    rows = ["case,activity,timestamp"]
    for i, d in enumerate(durations, start=first_case):
        rows += [f"c{i:04d},A,{t0.isoformat(sep=' ', timespec='milliseconds')}",
                 f"c{i:04d},B,{(t0 + timedelta(seconds=d)).isoformat(sep=' ', timespec='milliseconds')}"]
    csv.write_text("\n".join(rows) + "\n", encoding="utf-8")
    with open_store(path) as con:
        ingest_file(con, csv, progress=False)
        refresh(con)


def _stored_and_exact(path: Path) -> tuple[list, list]:
    from ingest.store import open_store

    with open_store(path) as con:
        assert edge_stats_fresh(con)
        stored = con.execute("SELECT min_seconds, median_seconds, p90_seconds, max_seconds FROM an_edge_stats").fetchall()
        exact = con.execute(
            """SELECT min(d), quantile_cont(d, 0.5), quantile_cont(d, 0.9), max(d)
               FROM (SELECT epoch(tgt_ts - src_ts) AS d FROM an_edges)""").fetchall()
    return stored, exact


def test_zero_and_subsecond_durations_keep_the_quantiles_exact(tmp_path):
    """Zero sorts below every sub-second duration (whose logarithm is negative): the histogram must
    not put them in one bucket number, or min and median come from the wrong place."""
    db = tmp_path / "subsecond.duckdb"
    _subsecond_store(db, [0, 0, 0.25, 0.5, 0.5, 2, 0.75])  # first load: a rebuild
    stored, exact = _stored_and_exact(db)
    assert stored == exact and exact[0][:2] == (0.0, 0.5)
    _subsecond_store(db, [0, 0.001, 0.125, 0, 0, 3.5], first_case=100)  # an incremental refresh
    stored, exact = _stored_and_exact(db)
    assert stored == exact and exact[0][0] == 0.0


def test_migration_0008_rebuilds_edge_statistics_kept_with_the_old_buckets(tmp_path):
    from ingest.store import open_store

    db = tmp_path / "old.duckdb"
    _subsecond_store(db, [0, 0, 0.25, 0.5, 0.5, 2, 0.75])
    with open_store(db) as con:  # the statistics as the old buckets left them: zero in bucket -1
        con.execute("UPDATE an_edge_stats SET min_seconds = 0.25, median_seconds = 0.75")
        con.execute("DELETE FROM schema_migrations WHERE version = 8")
    with open_store(db) as con:  # a writer applies 0008: the statistics are stale, not used
        assert not edge_stats_fresh(con) and is_fresh(con)
        edges = dfg(con).edges
        assert edges["median_seconds"].tolist() == [0.5] and edges["min_seconds"].tolist() == [0.0]
        refresh(con)  # and rebuilt by the next refresh
    stored, exact = _stored_and_exact(db)
    assert stored == exact

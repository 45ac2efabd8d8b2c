"""The dashboard's fast paths give the same numbers as the slow ones, on the demo world (several
source systems, case attributes, variants): the maintained aggregates (``an_cases``, ``an_edges``,
``an_variants``) instead of scans of the events, and a filter's case keys selected once and
registered on the connection instead of re-selected by every query."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest
from e2e.worlds import demo_store

from analytics import pair_index
from dashboard import data, queries
from dashboard.filters import ViewFilter
from ingest.store import open_store

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def demo_con(tmp_path_factory):
    db, _config = demo_store(tmp_path_factory.getbasetemp())
    with open_store(db, read_only=True) as con:
        assert queries._fresh_aggregates(con), "the demo's ingest refreshes the aggregates"
        yield con


def filters(con) -> list[ViewFilter]:
    """One filter of each kind, built from the store's own values, and a combination."""
    sources = queries.source_names(con)
    first, last = queries.time_bounds(con)
    mid = (first + (last - first) / 2).date()
    attrs = queries.case_attribute_names(con)
    name = attrs["name"].iloc[0]
    value = queries.case_attribute_values(con, name)[0]
    variant = queries.top_variants(con, None, top=3)["variant_id"].iloc[1]
    assert len(sources) > 1
    return [ViewFilter(sources=(sources[1],)),
            ViewFilter(start=mid - timedelta(days=5), end=mid + timedelta(days=5)),
            ViewFilter(start=mid),
            ViewFilter(attrs=((name, (value,)),)),
            ViewFilter(variant=variant),
            ViewFilter(start=first.date(), end=mid, sources=(sources[0],), variant=variant),
            ViewFilter(start=mid - timedelta(days=20), sources=(sources[1],), attrs=((name, (value,)),))]


def slow_keys(con, flt: ViewFilter) -> list[int]:
    sql, params = flt.cases_sql()
    return sorted(r[0] for r in con.execute(sql, params).fetchall())


def test_selection_from_the_aggregates_equals_the_selection_from_the_events(demo_con):
    total = demo_con.execute("SELECT count(*) FROM cases").fetchone()[0]
    for i, flt in enumerate(filters(demo_con)):
        fast = sorted(int(k) for k in queries.selected_case_keys(demo_con, flt))
        assert fast == slow_keys(demo_con, flt), flt
        if i < 5:  # each single filter keeps some cases and drops others (the combination may keep none)
            assert 0 < len(fast) < total, flt


def answers(con, flt: ViewFilter | None) -> list:
    last = con.execute("SELECT max(ts) FROM events").fetchone()[0]
    start, end = queries.period_bounds(last, flt, days=28)
    ends = [queries.activity_names(con)[0]]
    args = dict(start=start.isoformat(), end=end.isoformat(), end_activities=ends, idle_days=10, now=last.isoformat())
    # an SLA of a step the store has never seen changes nothing on either path
    sla = {a: 3600.0 for a in queries.activity_names(con)} | {"(a step not in the store)": 1.0}
    waits = queries.bottleneck_waits(con, flt)
    for part in queries.BOTTLENECK_PARTS:  # each Bottlenecks tab's table alone is the same as with the others
        pd.testing.assert_frame_equal(queries.bottleneck_waits(con, flt, parts=[part])[part], waits[part])
    return [queries.overview(con, flt) | {"data_version": None},
            queries.flow_kpis(con, flt, **args),
            queries.weekly_flow(con, flt).to_dict("list"),
            queries.open_by(con, flt, by="last_source", end_activities=ends, now=last.isoformat()).to_dict("list"),
            queries.kpi_cases(con, flt, kind="wip", **args).to_dict("list"),
            queries.on_time_share(con, flt, sla=sla, **args),
            queries.top_variants(con, flt, top=10).to_dict("list"),
            queries.top_variants(con, flt, top=10, times=False).drop(columns=["median_seconds", "p90_seconds"])
            .to_dict("list"),
            waits["handoffs"].round(6).to_dict("list"),
            waits["weeks"].sort_values(["week", "activity"]).reset_index(drop=True).round(6).to_dict("list"),
            waits["resources"].round(6).to_dict("list"),
            sorted(queries.selected_case_ids(con, flt) or [])]


def test_queries_on_aggregates_and_a_registered_selection_equal_the_scans_of_the_events(demo_con, monkeypatch):
    cases = [None, *filters(demo_con)]
    fast = []
    for flt in cases:
        if flt is None:
            fast.append(answers(demo_con, None))
            continue
        demo_con.register(data.SELECTION_TABLE, pd.DataFrame({"case_key": queries.selected_case_keys(demo_con, flt)}))
        try:
            fast.append(answers(demo_con, flt.with_selection(data.SELECTION_TABLE)))
        finally:
            demo_con.unregister(data.SELECTION_TABLE)
    # the same filters answered by conditions on the case summaries (all but case attributes)
    on_summaries = {}
    for i, flt in enumerate(cases):
        if flt is not None and not flt.attrs:
            mask = queries._source_mask(demo_con, flt.sources) if flt.sources else None
            on_summaries[i] = answers(demo_con, flt.on_summaries(mask))
    assert len(on_summaries) == len(cases) - 3  # all but no filter and the two with case attributes
    # the same with the in-memory pair indexes the dashboard builds (Bottlenecks reads them under a filter)
    indexed = {}
    try:
        for grouping in pair_index.GROUPINGS:
            pair_index.ensure(demo_con, grouping)
        for i, flt in enumerate(cases):
            if flt is not None and not flt.attrs:
                mask = queries._source_mask(demo_con, flt.sources) if flt.sources else None
                indexed[i] = answers(demo_con, flt.on_summaries(mask))
    finally:
        pair_index.forget()
    monkeypatch.setattr(queries, "_fresh_aggregates", lambda _con: False)
    slow = [answers(demo_con, flt) for flt in cases]
    for flt, f, s in zip(cases, fast, slow, strict=True):
        assert f == s, flt
    for i, f in on_summaries.items():
        assert f == slow[i], cases[i]
        assert indexed[i] == slow[i], cases[i]
    assert fast[0][1]["current"]["started"] > 0 and fast[0][8]["frequency"]
    for f in fast:  # the filter bar's list (no throughput times) has the same variants and counts
        with_times, counts_only = f[6], f[7]
        assert counts_only["variant_id"] == with_times["variant_id"] and counts_only["cases"] == with_times["cases"]
    assert queries.top_variants(demo_con, None, times=False)[["median_seconds", "p90_seconds"]].isna().all().all()


def test_a_registered_selection_is_used_and_a_filter_key_ignores_it(demo_con):
    flt = filters(demo_con)[0]
    picked = flt.with_selection("some_table")
    assert picked.cases_sql() == ("SELECT case_key FROM some_table", [])
    assert picked.key() == flt.key() and picked == flt


def test_a_source_filter_reads_the_cases_source_bits_not_the_events(demo_con):
    flt = filters(demo_con)[0]
    mask = queries._source_mask(demo_con, flt.sources)
    assert mask, "every demo source id is below 64, so it has a bit"
    sql, params = flt.cases_sql(aggregates=True, source_mask=mask)
    assert "events" not in sql and params == [mask]
    # the bits say exactly which systems each case has events from
    bits = dict(demo_con.execute("SELECT case_key, source_mask FROM an_cases").fetchall())
    systems = demo_con.execute("SELECT case_key, list(DISTINCT source_id) FROM events GROUP BY 1").fetchall()
    assert len(bits) == len(systems)
    assert all(bits[k] == sum(1 << i for i in ids) for k, ids in systems)


def test_migration_0007_fills_the_source_bits_of_a_store_summarised_before_it(tmp_path):
    import shutil

    from analytics.queries import cases_sql

    db, _config = demo_store(tmp_path.parent)
    old = tmp_path / "old.duckdb"
    shutil.copy(db, old)
    with open_store(old) as con:  # make it a store as 0006 left it
        con.execute("ALTER TABLE an_cases DROP COLUMN source_mask")
        con.execute("DELETE FROM schema_migrations WHERE version = 7")
    with open_store(old) as con:  # a writer applies 0007
        assert con.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] >= 7
        got = con.execute("SELECT case_key, source_mask FROM an_cases ORDER BY 1").fetchall()
        want = con.execute(f"SELECT case_key, source_mask FROM ({cases_sql('events')}) ORDER BY 1").fetchall()
    assert got == want and len(got) > 100


def test_engine_results_narrowed_by_case_key_equal_narrowing_by_case_id(demo_con, monkeypatch):
    from dashboard.engines import _keyed

    ids = demo_con.execute("SELECT case_id FROM cases ORDER BY case_id DESC").df()
    result = _keyed(demo_con, pd.DataFrame({"case_id": list(ids["case_id"]) + ["not-in-the-store"],
                                             "n": range(len(ids) + 1)}))
    assert result["case_key"].iloc[-1] == -1 and (result["case_key"].iloc[:-1] >= 0).all()
    for flt in filters(demo_con):
        keys = queries.selected_case_keys(demo_con, flt)
        monkeypatch.setattr(data, "_selection", lambda *_a, k=keys: k)
        monkeypatch.setattr(data, "db_path", lambda: "db")
        monkeypatch.setattr(data, "data_version", lambda: 1)
        by_key = data._narrow(data.Outcome(result), flt).value
        wanted = set(queries.selected_case_ids(demo_con, flt) or [])
        assert list(by_key["case_id"]) == [c for c in result["case_id"] if c in wanted], flt


def test_the_cases_behind_a_number_are_the_newest_ones_with_ties_broken_by_id(demo_con):
    last = demo_con.execute("SELECT max(ts) FROM events").fetchone()[0]
    start, end = queries.period_bounds(last, None, days=28)
    args = dict(start=start.isoformat(), end=end.isoformat(), idle_days=10, now=last.isoformat())
    for kind in ("open", "wip", "started"):
        every = queries.kpi_cases(demo_con, None, kind=kind, limit=1_000_000, **args)
        assert len(every) > 7
        assert list(every.sort_values(["last_ts", "case_id"], ascending=[False, True])["case_id"]) == list(every["case_id"])
        for limit in (1, 7):
            top = queries.kpi_cases(demo_con, None, kind=kind, limit=limit, **args)
            pd.testing.assert_frame_equal(top, every.head(limit))


def test_the_process_map_of_a_source_filter_shows_the_whole_path_of_its_cases(demo_con):
    """The sidebar keeps the cases with an event from a system; the map (analytics engine) shows all
    their events, as the store-only map and every other page do — not only that system's events."""
    from dashboard import engines

    sources = queries.source_names(demo_con)
    for name in sources:
        flt = ViewFilter(sources=(name,))
        got = engines.process_map(demo_con, flt)
        assert got["engine"] == "analytics"
        want = queries.dfg(demo_con, flt)

        def freq(edges):
            return dict(zip(zip(edges["source"], edges["target"], strict=True), edges["frequency"].astype(int),
                            strict=True))

        assert freq(got["edges"]) == freq(want["edges"]), name
        own = demo_con.execute("SELECT count(DISTINCT activity_id) FROM events JOIN sources USING (source_id) "
                               "WHERE name = ?", [name]).fetchone()[0]
        assert len(got["activities"]) > own  # activities of the other systems are on the map too


def test_a_prefetch_of_a_question_already_answered_does_no_work(tmp_path_factory, monkeypatch):
    db, config = demo_store(tmp_path_factory.getbasetemp())
    monkeypatch.setenv("PROCESSLENS_DB", str(db))
    monkeypatch.setenv("PROCESSLENS_CONFIG", str(config))
    data.clear()
    calls = []
    real = data._cached

    def counting(*args):
        calls.append(args[0])
        return real(*args)

    monkeypatch.setattr(data, "_cached", counting)
    flt = ViewFilter(sources=(queries_sources(db)[0],))
    first = data.prefetch("overview", flt)
    first.result(timeout=60)
    assert calls == ["dashboard.queries:overview"]
    assert data.get("overview", flt)["cases"] > 0  # answered from the cache
    again = data.prefetch("overview", flt)
    assert again.done() and calls.count("dashboard.queries:overview") == 2  # the get, not another prefetch
    data.clear()  # a write from this process forgets what was answered
    data.prefetch("overview", flt).result(timeout=60)
    assert calls.count("dashboard.queries:overview") == 3


def queries_sources(db) -> list[str]:
    with open_store(db, read_only=True) as con:
        return queries.source_names(con)

"""The dashboard's fast paths give the same numbers as the slow ones, on the demo world (several
source systems, case attributes, variants): the maintained aggregates (``an_cases``, ``an_edges``,
``an_variants``) instead of scans of the events, and a filter's case keys selected once and
registered on the connection instead of re-selected by every query."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest
from e2e.worlds import demo_store

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
            ViewFilter(start=first.date(), end=mid, sources=(sources[0],), variant=variant)]


def slow_keys(con, flt: ViewFilter) -> list[int]:
    sql, params = flt.cases_sql()
    return sorted(r[0] for r in con.execute(sql, params).fetchall())


def test_selection_from_the_aggregates_equals_the_selection_from_the_events(demo_con):
    total = demo_con.execute("SELECT count(*) FROM cases").fetchone()[0]
    for i, flt in enumerate(filters(demo_con)):
        fast = [int(k) for k in queries.selected_case_keys(demo_con, flt)]
        assert fast == slow_keys(demo_con, flt), flt
        if i < 5:  # each single filter keeps some cases and drops others (the combination may keep none)
            assert 0 < len(fast) < total, flt


def answers(con, flt: ViewFilter | None) -> list:
    last = con.execute("SELECT max(ts) FROM events").fetchone()[0]
    start, end = queries.period_bounds(last, flt, days=28)
    ends = [queries.activity_names(con)[0]]
    args = dict(start=start.isoformat(), end=end.isoformat(), end_activities=ends, idle_days=10, now=last.isoformat())
    sla = {a: 3600.0 for a in queries.activity_names(con)}
    waits = queries.bottleneck_waits(con, flt)
    return [queries.overview(con, flt) | {"data_version": None},
            queries.flow_kpis(con, flt, **args),
            queries.weekly_flow(con, flt).to_dict("list"),
            queries.open_by(con, flt, by="last_source", end_activities=ends, now=last.isoformat()).to_dict("list"),
            queries.kpi_cases(con, flt, kind="wip", **args).to_dict("list"),
            queries.on_time_share(con, flt, sla=sla, **args),
            queries.top_variants(con, flt, top=10).to_dict("list"),
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
    monkeypatch.setattr(queries, "_fresh_aggregates", lambda _con: False)
    slow = [answers(demo_con, flt) for flt in cases]
    for flt, f, s in zip(cases, fast, slow, strict=True):
        assert f == s, flt
    assert fast[0][1]["current"]["started"] > 0 and fast[0][7]["frequency"]


def test_a_registered_selection_is_used_and_a_filter_key_ignores_it(demo_con):
    flt = filters(demo_con)[0]
    picked = flt.with_selection("some_table")
    assert picked.cases_sql() == ("SELECT case_key FROM some_table", [])
    assert picked.key() == flt.key() and picked == flt

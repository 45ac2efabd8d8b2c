"""Filters pushed into SQL select exactly what a pandas computation over the same events selects."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

from analytics import Filter, FilterError, cases, dfg, refresh

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import synthetic  # noqa: E402


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from ingest.store import open_store

    db = tmp_path_factory.mktemp("flt") / "store.duckdb"
    gen = synthetic.generate(1500, seed=3)
    with open_store(db) as con:
        synthetic.write(con, gen)
        refresh(con)
        ev = con.execute(
            "SELECT case_id, activity, ts, event_id, resource, source FROM event_log ORDER BY case_id, ts, event_id"
        ).df()
        attrs = con.execute("SELECT case_id, json_extract_string(attrs, '$.region') AS region FROM cases").df()
    return db, ev, attrs


@pytest.fixture(params=[True, False], ids=["aggregates", "from-events"])
def con(request, world):
    from ingest.store import open_store

    with open_store(world[0], read_only=True) as c:
        yield c, request.param


def summaries(ev: pd.DataFrame) -> pd.DataFrame:
    g = ev.sort_values(["case_id", "ts", "event_id"]).groupby("case_id", sort=False)
    out = pd.DataFrame({
        "start": g.ts.min(), "end": g.ts.max(), "first": g.activity.first(), "last": g.activity.last(),
        "trace": g.activity.agg(tuple),
    })
    out["duration"] = (out["end"] - out["start"]).dt.total_seconds()
    return out


def edges(ev: pd.DataFrame) -> pd.DataFrame:
    ev = ev.sort_values(["case_id", "ts", "event_id"])
    nxt = ev.groupby("case_id").activity.shift(-1)
    return pd.DataFrame({"case_id": ev.case_id, "src": ev.activity, "tgt": nxt}).dropna()


def selected(c, agg, flt: Filter) -> set[str]:
    return set(cases(c, flt, use_aggregates=agg).case_id)


T0, T1 = pd.Timestamp("2025-03-01"), pd.Timestamp("2025-04-15")


@pytest.mark.parametrize("mode", ["contained", "intersecting", "started", "completed"])
def test_time_range_modes(con, world, mode):
    c, agg = con
    s = summaries(world[1])
    expected = {
        "contained": (s.start >= T0) & (s.end <= T1),
        "intersecting": (s.end >= T0) & (s.start <= T1),
        "started": (s.start >= T0) & (s.start <= T1),
        "completed": (s.end >= T0) & (s.end <= T1),
    }[mode]
    flt = Filter(time_from="2025-03-01", time_to="2025-04-15", time_mode=mode)
    assert selected(c, agg, flt) == set(s.index[expected])
    assert 0 < expected.sum() < len(s)


def test_trim_cuts_events_and_recomputes_the_map(con, world):
    c, agg = con
    ev = world[1]
    trimmed = ev[(ev.ts >= T0) & (ev.ts <= T1)]
    flt = Filter(time_from="2025-03-01", time_to="2025-04-15", time_mode="trim")
    assert selected(c, agg, flt) == set(trimmed.case_id)
    expected = edges(trimmed).groupby(["src", "tgt"]).size().to_dict()
    got = dfg(c, flt, use_aggregates=agg).edges
    assert dict(zip(zip(got.source, got.target, strict=True), got.frequency, strict=True)) == expected


def test_case_attribute_values(con, world):
    c, agg = con
    attrs = world[2]
    expected = set(attrs.case_id[attrs.region.isin(["North", "East"])])
    assert selected(c, agg, Filter(case_attributes={"region": ["North", "East"]})) == expected


def test_event_attribute_values_cases_and_events(con, world):
    c, agg = con
    ev = world[1]
    hit = ev[ev.resource == "finance_01"]
    assert selected(c, agg, Filter(event_attributes={"resource": ["finance_01"]})) == set(hit.case_id)
    flt = Filter(event_attributes={"resource": ["finance_01"]}, event_attribute_mode="events")
    got = dfg(c, flt, use_aggregates=agg)
    assert sum(got.activities.values()) == len(hit)


@pytest.mark.parametrize("names", [["WMS"], ["PSP", "Helpdesk"], ["no such system"], ["WMS", "no such system"]])
def test_cases_with_an_event_from_source_systems(con, world, names):
    """Answered by a bit test on the case summaries' source bits; the same cases as the events say,
    and the same map as the event scan (the condition without the bits)."""
    from analytics import plan as plan_mod

    c, agg = con
    ev = world[1]
    flt = Filter(event_attributes={"source": names})
    assert plan_mod.source_mask(c, flt.source_names, agg) is not None  # the bit test is what runs
    assert selected(c, agg, flt) == set(ev.case_id[ev.source.isin(names)])
    with_bits = dfg(c, flt, use_aggregates=agg)
    original = plan_mod.source_mask
    try:
        plan_mod.source_mask = lambda *_a: None
        scanned = dfg(c, flt, use_aggregates=agg)
    finally:
        plan_mod.source_mask = original
    pd.testing.assert_frame_equal(with_bits.edges, scanned.edges)
    assert (with_bits.start_activities, with_bits.cases) == (scanned.start_activities, scanned.cases)


def test_activities_present_absent_and_follows(con, world):
    c, agg = con
    s = summaries(world[1])
    has = s.trace.map(lambda t: "Payment Failed" in t)
    no_ticket = s.trace.map(lambda t: "Open Ticket" not in t)
    assert selected(c, agg, Filter(activities_present=["Payment Failed"], activities_absent=["Open Ticket"])) == set(
        s.index[has & no_ticket])
    e = edges(world[1])
    expected = set(e.case_id[(e.src == "Create Invoice") & (e.tgt == "Ship Goods")])
    assert selected(c, agg, Filter(follows=[["Create Invoice", "Ship Goods"]])) == expected and expected


def test_start_end_and_duration(con, world):
    c, agg = con
    s = summaries(world[1])
    open_ = set(s.index[~s["last"].isin(["Close Order", "Reject Order"])])
    got = selected(c, agg, Filter(end_activities=[a for a in synthetic.NAMES if a not in ("Close Order", "Reject Order")]))
    assert got == open_ and open_
    assert selected(c, agg, Filter(start_activities=["Create Order"])) == set(s.index)
    expected = set(s.index[(s.duration >= 5 * 86400) & (s.duration <= 10 * 86400)])
    assert selected(c, agg, Filter(duration_min_seconds=5 * 86400, duration_max_seconds=10 * 86400)) == expected


def test_source_system_keeps_its_events(con, world):
    c, agg = con
    ev = world[1]
    wms = ev[ev.source == "WMS"]
    got = dfg(c, Filter(sources=["WMS"]), use_aggregates=agg)
    assert got.activities == wms.activity.value_counts().to_dict()
    assert dict(zip(zip(got.edges.source, got.edges.target, strict=True), got.edges.frequency, strict=True)) == \
        edges(wms).groupby(["src", "tgt"]).size().to_dict()


def test_variants_top_k_and_coverage(con, world):
    c, agg = con
    s = summaries(world[1])
    counts = s.trace.value_counts()
    top3 = set(counts.index[:3])
    assert counts.iloc[2] != counts.iloc[3]  # no tie at the cut in this log
    assert selected(c, agg, Filter(variants_top=3)) == set(s.index[s.trace.isin(top3)])
    share = counts.cumsum() / counts.sum()
    needed = set(counts.index[: int((share < 0.8).sum()) + 1])
    assert selected(c, agg, Filter(variants_coverage=0.8)) == set(s.index[s.trace.isin(needed)])


def test_filters_compose(con, world):
    c, agg = con
    s = summaries(world[1])
    attrs = world[2].set_index("case_id")
    flt = Filter(time_from="2025-03-01", time_to="2025-06-01", time_mode="started", case_attributes={"region": ["West"]},
                 activities_present=["Check Credit"])
    mask = (s.start >= pd.Timestamp("2025-03-01")) & (s.start <= pd.Timestamp("2025-06-01")) & \
        (attrs.loc[s.index, "region"] == "West").to_numpy() & s.trace.map(lambda t: "Check Credit" in t)
    assert selected(c, agg, flt) == set(s.index[mask])


def test_projection_on_activities(con, world):
    c, agg = con
    ev = world[1]
    keep = ["Create Order", "Ship Goods", "Close Order"]
    got = dfg(c, Filter(activities_keep=keep), use_aggregates=agg)
    proj = ev[ev.activity.isin(keep)]
    assert dict(zip(zip(got.edges.source, got.edges.target, strict=True), got.edges.frequency, strict=True)) == \
        edges(proj).groupby(["src", "tgt"]).size().to_dict()


@pytest.mark.parametrize("flt", [
    Filter(),
    Filter(time_from="2025-01-01T10:00:00Z", time_to="2025-02-01", time_mode="completed", variants_top=4),
    Filter(case_attributes={"region": ["North"], "customer": ["C1", "C2"]}, event_attributes={"resource": ["x y"]},
           follows=[["A", "B"], ["B|C", "D>E"]], duration_min_seconds=3600.5, sources=["ERP"], variants_coverage=0.8,
           activities_present=["Pick Goods"], case_ids=["o'brien", "a&b"], variant_ids=[12, -3]),
])
def test_serialisation_round_trips(flt):
    assert Filter.from_dict(flt.to_dict()) == flt
    assert Filter.from_query_params(flt.to_query_params()) == flt
    assert Filter.from_query_params(flt.to_query_string()) == flt


def test_bad_filters_raise_clear_errors():
    with pytest.raises(FilterError, match="time mode"):
        Filter(time_mode="sometimes")
    with pytest.raises(FilterError, match="not a date"):
        Filter(time_from="yesterday")
    with pytest.raises(FilterError, match="coverage"):
        Filter(variants_coverage=80)
    with pytest.raises(FilterError, match="unknown filter field"):
        Filter.from_dict({"colour": "red"})

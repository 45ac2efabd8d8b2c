"""Activities, bottlenecks, KPIs, resources, simplification and the DOT map, checked against pandas."""

from __future__ import annotations

import sys
from collections import deque
from pathlib import Path

import pandas as pd
import pytest

from analytics import (
    CaseStatusRule,
    Teams,
    activities,
    bottlenecks,
    dfg,
    kpis,
    refresh,
    resources,
    simplify,
    to_dot,
)
from analytics.simplify import END, START, map_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import synthetic  # noqa: E402

FINAL = ["Close Order", "Reject Order"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from ingest.store import open_store

    db = tmp_path_factory.mktemp("views") / "store.duckdb"
    with open_store(db) as con:
        synthetic.write(con, synthetic.generate(800, seed=5))
        refresh(con)
        ev = con.execute("SELECT case_id, activity, ts, start_ts, event_id, resource, source FROM event_log").df()
    ev = ev.sort_values(["case_id", "ts", "event_id"]).reset_index(drop=True)
    ev["prev_ts"] = ev.groupby("case_id").ts.shift(1)
    ev["prev_activity"] = ev.groupby("case_id").activity.shift(1)
    ev["prev_resource"] = ev.groupby("case_id").resource.shift(1)
    ev["prev_source"] = ev.groupby("case_id").source.shift(1)
    return db, ev


@pytest.fixture
def con(world):
    from ingest.store import open_store

    with open_store(world[0], read_only=True) as c:
        yield c


def test_activities_against_pandas(con, world):
    ev = world[1]
    got = activities(con).set_index("activity")
    assert got.frequency.to_dict() == ev.activity.value_counts().to_dict()
    per_case = ev.groupby(["activity", "case_id"]).size()
    assert got.cases.to_dict() == per_case.groupby(level=0).size().to_dict()
    rework = (per_case > 1).groupby(level=0).sum()
    assert got.rework_cases.to_dict() == rework.to_dict()
    svc = ev.dropna(subset=["start_ts"])
    svc = (svc.ts - svc.start_ts).dt.total_seconds().groupby(svc.activity).mean()
    for act, value in svc.items():
        assert got.loc[act, "service_mean_seconds"] == pytest.approx(value)
    w = ev.dropna(subset=["prev_ts"])
    wait = (w.start_ts.fillna(w.ts) - w.prev_ts).dt.total_seconds().groupby(w.activity).mean()
    for act, value in wait.items():
        assert got.loc[act, "waiting_mean_seconds"] == pytest.approx(value)


def test_service_time_from_start_complete_pairs(tmp_path):
    from ingest.api import ingest_file
    from ingest.store import open_store

    csv = tmp_path / "lc.csv"
    csv.write_text(
        "case,activity,lifecycle,timestamp\n"
        "1,A,start,2025-01-01 10:00:00\n1,A,complete,2025-01-01 10:30:00\n1,B,complete,2025-01-01 11:00:00\n"
        "1,A,start,2025-01-01 12:00:00\n1,A,complete,2025-01-01 12:10:00\n"
        "2,A,start,2025-01-02 09:00:00\n2,A,complete,2025-01-02 09:20:00\n"
    )
    with open_store(tmp_path / "s.duckdb") as con:
        ingest_file(con, csv, case="case", activity="activity", lifecycle="lifecycle", timestamp="timestamp", progress=False)
        got = activities(con).set_index("activity")
    assert got.loc["A", "frequency"] == 6 and got.loc["A", "instances"] == 3
    assert got.loc["A", "service_mean_seconds"] == pytest.approx((1800 + 600 + 1200) / 3)
    assert got.loc["A", "rework_cases"] == 1 and got.loc["A", "rework_instances"] == 1
    assert got.loc["A", "waiting_mean_seconds"] == pytest.approx(3600)  # B complete 11:00 -> A start 12:00
    assert got.loc["B", "waiting_mean_seconds"] == pytest.approx(1800)
    assert pd.isna(got.loc["B", "service_mean_seconds"])


def test_bottlenecks_rank_waiting_and_flag_handoffs(con, world):
    ev = world[1].dropna(subset=["prev_ts"])
    wait = (ev.ts - ev.prev_ts).dt.total_seconds()
    got = bottlenecks(con, by="edge")
    expected = wait.groupby([ev.prev_activity, ev.activity]).sum()
    assert {(r.source, r.target): r.waiting_total_seconds for r in got.itertuples()} == pytest.approx(expected.to_dict())
    assert list(got.waiting_total_seconds) == sorted(got.waiting_total_seconds, reverse=True)
    assert got.share_of_waiting.sum() == pytest.approx(1.0)
    row = got[(got.source == "Approve Order") & (got.target == "Pick Goods")].iloc[0]
    assert row.system_handoff_share == 1.0 and row.handoff  # ERP -> WMS
    teams = Teams(mapping={r: r.rsplit("_", 1)[0] for r in world[1].resource.unique()})
    by_team = bottlenecks(con, by="team", teams=teams).set_index("team")
    team_of = ev.resource.map(teams.mapping)
    assert by_team.waiting_total_seconds.to_dict() == pytest.approx(wait.groupby(team_of).sum().to_dict())
    by_sys = bottlenecks(con, by="handoff")
    assert by_sys.transitions.sum() == len(ev)


def test_kpis_against_pandas(con, world):
    ev = world[1]
    g = ev.groupby("case_id")
    s = pd.DataFrame({"start": g.ts.min(), "end": g.ts.max(), "last": g.activity.last()})
    got = kpis(con, freq="week", status=CaseStatusRule(end_activities=FINAL)).set_index("period")
    arrivals = s.start.dt.to_period("W-SUN").dt.start_time.value_counts()
    assert got.arrivals[got.arrivals > 0].to_dict() == arrivals.to_dict()
    done = s[s["last"].isin(FINAL)]
    completions = done.end.dt.to_period("W-SUN").dt.start_time.value_counts()
    assert got.completions[got.completions > 0].to_dict() == completions.to_dict()
    assert got.wip.iloc[-1] == (~s["last"].isin(FINAL)).sum()
    dur = (done.end - done.start).dt.total_seconds().groupby(done.end.dt.to_period("W-SUN").dt.start_time).median()
    assert got.throughput_median_seconds.dropna().to_dict() == pytest.approx(dur.to_dict())
    assert got.prev_arrivals.iloc[1:].tolist() == got.arrivals.iloc[:-1].tolist()


def test_resources_against_pandas(con, world):
    ev = world[1]
    got = resources(con)
    assert got.workload.set_index("resource").events.to_dict() == ev.resource.value_counts().to_dict()
    pairs = ev.dropna(subset=["prev_resource"])
    pairs = pairs[pairs.prev_resource != pairs.resource]
    expected = pairs.groupby([pairs.prev_resource, pairs.resource]).size().to_dict()
    assert {(r["from"], r["to"]): r["handovers"] for _, r in got.handovers.iterrows()} == expected


def _connected(result) -> bool:
    succ: dict[str, set[str]] = {}
    edges = list(zip(result.edges.source, result.edges.target, strict=True))
    edges += [(START, a) for a in result.start_activities] + [(a, END) for a in result.end_activities]
    for a, b in edges:
        succ.setdefault(a, set()).add(b)

    def reach(root, graph):
        seen, todo = {root}, deque([root])
        while todo:
            for n in graph.get(todo.popleft(), ()):
                if n not in seen:
                    seen.add(n)
                    todo.append(n)
        return seen

    pred: dict[str, set[str]] = {}
    for a, b in edges:
        pred.setdefault(b, set()).add(a)
    nodes = set(result.activities)
    return nodes <= reach(START, succ) and nodes <= reach(END, pred)


@pytest.mark.parametrize("acts,paths", [(1.0, 0.0), (1.0, 0.3), (0.5, 0.0), (0.3, 0.5), (1.0, 1.0)])
def test_simplification_never_disconnects(con, acts, paths):
    full = dfg(con)
    assert _connected(full)
    small = map_for(con, activities=acts, paths=paths)
    assert _connected(small)
    assert len(small.activities) == max(1, -(-len(full.activities) * acts // 1))
    if paths == 1.0 and acts == 1.0:
        assert len(small.edges) == len(full.edges)
    if paths == 0.0 and acts == 1.0:
        assert len(small.edges) < len(full.edges)
    structural = simplify(full, 1.0, paths)
    assert _connected(structural)
    kept = set(zip(structural.edges.source, structural.edges.target, strict=True))
    top = full.edges.sort_values("frequency", ascending=False).head(int(paths * len(full.edges) * 0.5))
    assert set(zip(top.source, top.target, strict=True)) <= kept


def test_dot_has_every_node_and_edge(con):
    result = dfg(con)
    for overlay in ("frequency", "median", "p90"):
        dot = to_dot(result, overlay=overlay)
        assert dot.startswith("digraph") and dot.rstrip().endswith("}")
        assert sum(1 for line in dot.splitlines() if " -> " in line) == (
            len(result.edges) + len(result.start_activities) + len(result.end_activities))
        for name in result.activities:
            assert f'"{name}" [label=' in dot


def test_empty_store_gives_empty_results(tmp_path):
    from analytics import cases, discover, variants
    from analytics.pm4py_bridge import DiscoveryError
    from ingest.store import open_store

    with open_store(tmp_path / "missing.duckdb", read_only=True) as con:
        assert dfg(con).edges.empty and variants(con).empty and cases(con).empty
        assert activities(con).empty and bottlenecks(con).empty and kpis(con).empty
        assert resources(con).workload.empty and to_dot(dfg(con)).startswith("digraph")
        with pytest.raises(DiscoveryError, match="no cases"):
            discover(con)

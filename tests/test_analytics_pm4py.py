"""On every real flat log: DFG, start/end activities, variants, case durations, performance DFG and
discovery equal pm4py's on the same file — through the maintained aggregates and straight from events."""

from __future__ import annotations

import math
import warnings

import pandas as pd
import pytest
from defusedxml import ElementTree as ET

from tests.conftest import real_log

pytestmark = pytest.mark.real

LOGS = [
    "pm4py-running-example/running-example.xes",
    "pm4py-running-example/running-example.csv",
    "road-traffic-fines/roadtraffic100traces.xes",
    "road-traffic-fines/roadtraffic100traces.csv",
    "receipt/08_receipt.xes.gz",
    "helpdesk/helpdesk.xes.gz",
    "bpic2013-incidents/07_bpic2013_incidents.xes.gz",
]


def _pm4py_log(path) -> pd.DataFrame:
    import pm4py

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if path.name.endswith(".csv"):
            df = pd.read_csv(path, keep_default_na=False, na_values=[""])
            return pm4py.format_dataframe(df, case_id="case:concept:name", activity_key="concept:name",
                                          timestamp_key="time:timestamp")
        return pm4py.read_xes(str(path))


@pytest.fixture(scope="module", params=LOGS)
def loaded(request, tmp_path_factory):
    from analytics import refresh
    from ingest.api import ingest_file
    from ingest.store import open_store

    path = real_log(request.param)
    db = tmp_path_factory.mktemp("an") / "store.duckdb"
    with open_store(db) as con:
        ingest_file(con, path, progress=False)
        refresh(con)
    return db, _pm4py_log(path)


@pytest.fixture(params=[True, False], ids=["aggregates", "from-events"])
def con(request, loaded):
    from ingest.store import open_store

    db, _ = loaded
    with open_store(db, read_only=True) as c:
        yield c, request.param


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)


def test_dfg_equals_pm4py(con, loaded):
    import pm4py

    from analytics import dfg

    c, agg = con
    log = loaded[1]
    ours = dfg(c, use_aggregates=agg)
    freq, start, end = pm4py.discover_dfg(log)
    assert {(s, t): n for s, t, n in zip(ours.edges.source, ours.edges.target, ours.edges.frequency, strict=True)} == dict(freq)
    assert ours.start_activities == dict(start)
    assert ours.end_activities == dict(end)


def test_performance_dfg_equals_pm4py(con, loaded):
    import pm4py

    from analytics import dfg

    c, agg = con
    perf = pm4py.discover_performance_dfg(loaded[1])[0]
    ours = dfg(c, use_aggregates=agg).edges
    assert len(ours) == len(perf)
    for row in ours.itertuples():
        expected = perf[(row.source, row.target)]
        for key in ("mean", "median", "min", "max"):
            assert _close(getattr(row, f"{key}_seconds"), expected[key]), (row.source, row.target, key)


def test_variants_equal_pm4py(con, loaded):
    import pm4py

    from analytics import variants

    c, agg = con
    theirs = {k: (len(v) if isinstance(v, list) else v) for k, v in pm4py.get_variants(loaded[1]).items()}
    ours = variants(c, use_aggregates=agg)
    assert {tuple(a): n for a, n in zip(ours.activities, ours.cases, strict=True)} == theirs
    assert list(ours.cases) == sorted(ours.cases, reverse=True)
    assert _close(ours.share.sum(), 1.0)


def test_case_durations_equal_pm4py(con, loaded):
    import pm4py

    from analytics import cases

    c, agg = con
    ours = sorted(cases(c, use_aggregates=agg).duration_seconds)
    theirs = sorted(pm4py.get_all_case_durations(loaded[1]))
    assert len(ours) == len(theirs)
    assert all(_close(a, b) for a, b in zip(ours, theirs, strict=True))


def test_discovery_equals_pm4py_on_the_same_log(loaded):
    import pm4py

    from analytics import discover
    from ingest.store import open_store

    db, log = loaded
    if len(log) > 30000:
        pytest.skip("discovery comparison kept to the smaller logs for speed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = pm4py.discover_process_tree_inductive(log, noise_threshold=0.2)
    with open_store(db, read_only=True) as c:
        ours = discover(c, noise=0.2)
    assert str(ours.tree) == str(theirs)
    bpmn = ET.fromstring(ours.bpmn_xml.encode())
    assert bpmn.tag == "{http://www.omg.org/spec/BPMN/20100524/MODEL}definitions"
    tasks = {t.get("name") for t in bpmn.iter("{http://www.omg.org/spec/BPMN/20100524/MODEL}task")}
    labels = {t.label for t in ours.net.transitions if t.label}
    assert tasks == labels and labels
    assert ET.fromstring(ours.pnml.encode()).tag == "pnml"


def test_dfg_discovery_equals_pm4py_imd(loaded):
    import pm4py
    from pm4py.objects.dfg.obj import DFG

    from analytics import discover
    from ingest.store import open_store

    db, log = loaded
    graph, start, end = pm4py.discover_dfg(log)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = pm4py.discover_process_tree_inductive(DFG(graph, start, end))
    with open_store(db, read_only=True) as c:
        ours = discover(c, miner="dfg")
    assert str(ours.tree) == str(theirs)

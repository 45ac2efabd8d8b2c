"""Every real log in ../shared/data/real loads, and equals what pm4py reads from the same file:
case, event and activity counts, the per-case event order (ties in source order) and the
timestamps in UTC."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ingest.api import ingest_file
from tests.conftest import real_log

pytestmark = pytest.mark.real

CASE, ACT, TS = "case:concept:name", "concept:name", "time:timestamp"

XES_LOGS = [
    "pm4py-running-example/running-example.xes",
    "road-traffic-fines/roadtraffic100traces.xes",
    "receipt/08_receipt.xes.gz",
    "helpdesk/helpdesk.xes.gz",
    "bpic2013-incidents/07_bpic2013_incidents.xes.gz",
]
CSV_LOGS = [
    "pm4py-running-example/running-example.csv",
    "road-traffic-fines/roadtraffic100traces.csv",
]
OCEL_LOGS = [
    "ocel/ocel20_example.sqlite",
    "ocel/ocel20_example.jsonocel",
    "ocel/ocel20_example.xmlocel",
    "ocel/logistics.sqlite",
    "ocel/github_pm4py.jsonocel",
]


def utc_naive(series: pd.Series) -> pd.Series:
    ts = pd.to_datetime(series, utc=True)
    return ts.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[us]")


def pm4py_traces(df: pd.DataFrame) -> dict[str, list[tuple[str, pd.Timestamp]]]:
    """Per case: (activity, UTC time) in pm4py's order (stable sort by time within the case)."""
    df = df[[CASE, ACT, TS]].copy()
    df[TS] = utc_naive(df[TS])
    df = df.reset_index(drop=True)
    df["_pos"] = range(len(df))
    df = df.sort_values([CASE, TS, "_pos"], kind="stable")
    return {str(c): list(zip(g[ACT].astype(str), g[TS], strict=True)) for c, g in df.groupby(CASE, sort=False)}


def store_traces(con, source: str) -> dict[str, list[tuple[str, pd.Timestamp]]]:
    df = con.execute(
        "SELECT case_id, activity, ts FROM event_log WHERE source = ? ORDER BY case_id, ts, event_id", [source]
    ).df()
    df["ts"] = df["ts"].astype("datetime64[us]")
    return {c: list(zip(g["activity"], g["ts"], strict=True)) for c, g in df.groupby("case_id", sort=False)}


def assert_same_log(con, source: str, expected_df: pd.DataFrame) -> None:
    n_cases, n_events, n_acts = con.execute(
        "SELECT count(DISTINCT case_id), count(*), count(DISTINCT activity) FROM event_log WHERE source = ?", [source]
    ).fetchall()[0]
    assert (n_cases, n_events, n_acts) == (
        expected_df[CASE].nunique(), len(expected_df), expected_df[ACT].nunique()
    )
    ours, theirs = store_traces(con, source), pm4py_traces(expected_df)
    assert ours.keys() == theirs.keys()
    differing = [c for c in theirs if ours[c] != theirs[c]]
    assert not differing, f"{len(differing)} cases differ, e.g. {differing[0]}: {ours[differing[0]][:5]} != {theirs[differing[0]][:5]}"


@pytest.mark.parametrize("relative", XES_LOGS)
def test_xes_log_equals_pm4py(relative: str, store) -> None:
    import pm4py

    path = real_log(relative)
    imp = ingest_file(store, path, progress=False)
    assert imp.result.status == "succeeded" and imp.result.rows_rejected == 0
    expected = pm4py.read_xes(str(path))
    assert_same_log(store, path.name, expected)


@pytest.mark.parametrize("relative", CSV_LOGS)
def test_csv_log_equals_pm4py(relative: str, store) -> None:
    import pm4py

    path = real_log(relative)
    imp = ingest_file(store, path, progress=False)
    assert imp.result.rows_rejected == 0
    assert (imp.mapping.case, imp.mapping.activity, imp.mapping.timestamp) == (CASE, ACT, TS)
    expected = pm4py.format_dataframe(pd.read_csv(path, keep_default_na=False, na_values=[""]),
                                      case_id=CASE, activity_key=ACT, timestamp_key=TS)
    assert_same_log(store, path.name, expected)


@pytest.mark.parametrize("relative", OCEL_LOGS)
def test_ocel_log_equals_pm4py(relative: str, store) -> None:
    import pm4py

    path = real_log(relative)
    ocel = pm4py.read_ocel2(str(path)) if "github" not in relative else pm4py.read_ocel(str(path))
    types = ocel.relations[ocel.object_type_column].value_counts()
    for object_type in list(types.index)[:2]:
        imp = ingest_file(store, path, object_type=object_type, source=f"{path.name}:{object_type}", progress=False)
        assert imp.extra["object_type"] == object_type
        flat = pm4py.ocel_flattening(ocel, object_type)
        assert_same_log(store, f"{path.name}:{object_type}", flat)
    # the object-centric tables are kept whole
    sid = store.execute("SELECT source_id FROM sources WHERE name = ?", [f"{path.name}:{types.index[0]}"]).fetchall()[0][0]
    counts = store.execute(
        "SELECT (SELECT count(*) FROM ocel_events WHERE source_id = $s), (SELECT count(*) FROM ocel_objects WHERE source_id = $s),"
        " (SELECT count(*) FROM ocel_event_objects WHERE source_id = $s), (SELECT count(*) FROM ocel_object_objects WHERE source_id = $s)",
        {"s": sid},
    ).fetchall()[0]
    o2o = getattr(ocel, "o2o", None)
    assert counts == (len(ocel.events), ocel.objects[ocel.object_id_column].nunique(), len(ocel.relations),
                      0 if o2o is None else len(o2o))


def test_every_real_log_is_covered() -> None:
    """A new file in the shared folder must be added to the lists above."""
    root = real_log("SOURCES.md").parent
    listed = {Path(p).name for p in XES_LOGS + CSV_LOGS + OCEL_LOGS}
    logs = {p.name for p in root.rglob("*") if p.is_file() and p.suffix not in {".md", ".bpmn", ".pnml"}}
    assert logs <= listed, f"not tested: {sorted(logs - listed)}"


def test_reimport_of_real_log_loads_nothing(store) -> None:
    path = real_log("receipt/08_receipt.xes.gz")
    first = ingest_file(store, path, progress=False).result
    second = ingest_file(store, path, progress=False).result
    assert (second.rows_loaded, second.duplicates_skipped) == (0, first.rows_loaded)

"""The dashboard's store queries, filters, auth and map helpers, checked on real logs against pm4py
and pandas computations of the same numbers."""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd
import pytest
from conftest import real_log

from dashboard import auth, queries
from dashboard.components import kpi, processmap
from dashboard.filters import FilterError, ViewFilter, variant_id
from ingest.api import ingest_file
from ingest.store import open_store
from processlens import snapshot


@pytest.fixture(scope="module")
def receipt(tmp_path_factory):
    path = tmp_path_factory.mktemp("receipt") / "store.duckdb"
    with open_store(path) as con:
        ingest_file(con, real_log("receipt/08_receipt.xes.gz"), progress=False)
    with open_store(path, read_only=True) as con:
        yield con


@pytest.fixture(scope="module")
def receipt_log():
    import pm4py

    return pm4py.read_xes(str(real_log("receipt/08_receipt.xes.gz")))


def test_dfg_equals_pm4py(receipt, receipt_log):
    import pm4py

    dfg, start, end = pm4py.discover_dfg(receipt_log)
    ours = queries.dfg(receipt)["edges"]
    inner = ours[(ours["source"] != "▶") & (ours["target"] != "■")]
    assert {(r.source, r.target): r.frequency for r in inner.itertuples()} == dict(dfg)
    assert dict(zip(ours[ours["source"] == "▶"]["target"], ours[ours["source"] == "▶"]["frequency"], strict=True)) == dict(start)
    assert dict(zip(ours[ours["target"] == "■"]["source"], ours[ours["target"] == "■"]["frequency"], strict=True)) == dict(end)


def test_variants_equal_pm4py(receipt, receipt_log):
    import pm4py

    expected = {tuple(k): v for k, v in pm4py.get_variants(receipt_log).items()}
    ours = queries.top_variants(receipt, top=10_000)
    assert {tuple(a): c for a, c in zip(ours["activities"], ours["cases"], strict=True)} == expected
    assert ours["cases"].is_monotonic_decreasing
    assert ours["share"].sum() == pytest.approx(1.0)
    # the short id in SQL equals the Python one, and filtering by it keeps exactly its cases
    first = ours.iloc[0]
    assert first["variant_id"] == variant_id(first["activities"])
    assert queries.overview(receipt, ViewFilter(variant=first["variant_id"]))["cases"] == first["cases"]
    assert queries.variant_activities(receipt, first["variant_id"]) == list(first["activities"])


def test_filters_select_the_same_cases_as_pandas(receipt, receipt_log):
    df = receipt_log
    span = df.groupby("case:concept:name")["time:timestamp"].agg(["min", "max"])
    lo, hi = pd.Timestamp("2011-03-01", tz="UTC"), pd.Timestamp("2011-04-01", tz="UTC")
    expected = span[(span["max"] >= lo) & (span["min"] < hi)].index
    flt = ViewFilter(start=date(2011, 3, 1), end=date(2011, 3, 31))
    assert queries.overview(receipt, flt)["cases"] == len(expected)
    channel = df.groupby("case:concept:name")["case:channel"].first()
    both = set(expected) & set(channel[channel == "Desk"].index)
    flt = ViewFilter(start=date(2011, 3, 1), end=date(2011, 3, 31), attrs=(("case:channel", ("Desk",)),))
    assert queries.overview(receipt, flt)["cases"] == len(both)
    assert queries.overview(receipt, ViewFilter(sources=("no such system",)))["cases"] == 0


def test_case_events_follow_the_canonical_order(receipt, receipt_log):
    case = receipt_log["case:concept:name"].iloc[0]
    ours = queries.case_events(receipt, case)
    theirs = receipt_log[receipt_log["case:concept:name"] == case]
    assert list(ours["activity"]) == list(theirs["concept:name"])
    waits = theirs["time:timestamp"].diff().dt.total_seconds().iloc[1:].tolist()
    assert ours["wait_seconds"].iloc[1:].tolist() == pytest.approx(waits)
    summary = queries.case_summary(receipt, case)
    assert summary["events"] == len(theirs)
    assert queries.case_summary(receipt, "no such case") is None


def test_flow_kpis_count_started_and_completed_cases(receipt, receipt_log):
    span = receipt_log.groupby("case:concept:name")["time:timestamp"].agg(["min", "max"])
    span = span.apply(lambda s: s.dt.tz_convert(None))
    start, end, now = datetime(2011, 6, 1), datetime(2011, 7, 1), datetime(2012, 6, 1)
    k = queries.flow_kpis(receipt, None, start.isoformat(), end.isoformat(), idle_days=30, now=now.isoformat())
    assert k["current"]["started"] == ((span["min"] >= start) & (span["min"] < end)).sum()
    done = span[(span["max"] >= start) & (span["max"] < end)]  # all idle for 30 days by 2012-06
    assert k["current"]["completed"] == len(done)
    assert k["current"]["median_seconds"] == pytest.approx((done["max"] - done["min"]).dt.total_seconds().median())
    cases = queries.kpi_cases(receipt, None, "started", start.isoformat(), end.isoformat(), now=now.isoformat())
    assert len(cases) == k["current"]["started"]
    # the period before, of the same length, and the open cases at ``now`` (idle 30 days = closed)
    closed = span["max"] < now - pd.Timedelta(days=30)
    for key, (a, b) in {"current": (start, end), "previous": (start - (end - start), start)}.items():
        got = k[key]
        done = span[closed & (span["max"] >= a) & (span["max"] < b)]
        secs = (done["max"] - done["min"]).dt.total_seconds()
        assert got["started"] == ((span["min"] >= a) & (span["min"] < b)).sum(), key
        assert got["completed"] == len(done) > 0, key
        assert got["median_seconds"] == pytest.approx(secs.median()), key
        assert got["p90_seconds"] == pytest.approx(secs.quantile(0.9)), key  # linear, as quantile_cont
        assert got["wip"] == ((span["min"] < b) & (~closed | (span["max"] >= b))).sum(), key
    assert (k["open"], k["cases"]) == ((~closed).sum(), len(span))


def test_handoff_waits_sum_to_all_waiting(receipt, receipt_log):
    ours = queries.handoff_waits(receipt, top=10_000)
    df = receipt_log.sort_values(["case:concept:name", "time:timestamp"], kind="stable")
    waits = df.groupby("case:concept:name")["time:timestamp"].diff().dt.total_seconds().dropna()
    assert ours["frequency"].sum() == len(waits)
    assert ours["share_of_waiting"].sum() == pytest.approx(1.0)


def test_data_page_queries_on_a_store_with_rejects(tmp_path):
    csv = tmp_path / "orders.csv"
    csv.write_text("case,activity,timestamp\nA,start,2024-01-01 10:00\nA,end,not a time\nB,start,2024-01-02 09:00\n")
    with open_store(tmp_path / "s.duckdb") as con:
        ingest_file(con, csv, progress=False)
        src = queries.sources_table(con, now=datetime(2024, 1, 3))
        assert src.loc[0, "events"] == 2 and src.loc[0, "rejected"] == 1
        rej = queries.reject_summary(con)
        assert rej["records"].sum() == 1 and rej.loc[0, "first_line"] == 3
        runs = queries.ingest_runs(con)
        assert runs.loc[0, "rows_loaded"] == 2


def test_view_filter_round_trips_through_the_url():
    flt = ViewFilter(start=date(2024, 1, 1), end=date(2024, 2, 1), sources=("ERP", "WMS"),
                     attrs=(("region", ("North", "a=b")),), variant="0123456789")
    assert ViewFilter.from_query_params(flt.to_query_params()) == flt
    assert ViewFilter.from_query_params({}) == ViewFilter()
    with pytest.raises(FilterError, match="not a date"):
        ViewFilter.from_query_params({"from": "yesterday"})
    with pytest.raises(FilterError, match="no '='"):
        ViewFilter.from_query_params({"attr": ["region"]})
    swapped = ViewFilter.from_query_params({"from": "2024-02-01", "to": "2024-01-01"})
    assert swapped.start < swapped.end


def test_roles_and_users_file(tmp_path):
    assert auth.allowed("leadership", "read") and not auth.allowed("leadership", "act")
    assert auth.allowed("operator", "act") and not auth.allowed("operator", "edit")
    assert auth.allowed("analyst", "edit") and not auth.allowed("analyst", "admin")
    assert auth.allowed("admin", "admin") and not auth.allowed("nobody", "read")
    users = tmp_path / "users.toml"
    auth.save_user(users, "ana", "operator", "correct horse")
    loaded = auth.load_users(users)
    assert "correct horse" not in users.read_text() and loaded["ana"]["role"] == "operator"
    assert auth.verify(loaded, "ana", "correct horse") == auth.User("ana", "operator", "ana")
    assert auth.verify(loaded, "ana", "wrong password") is None
    assert auth.verify(loaded, "bob", "correct horse") is None
    with pytest.raises(Exception, match="shorter than 8"):
        auth.save_user(users, "x", "admin", "short")


def test_rag_and_map_simplification():
    assert kpi.rag(5, {"green": 7, "red": 14}) == "green"
    assert kpi.rag(10, {"green": 7, "red": 14}) == "amber"
    assert kpi.rag(20, {"green": 7, "red": 14}) == "red"
    assert kpi.rag(0.95, {"green": 0.9, "red": 0.75}) == "green"
    assert kpi.rag(0.5, {"green": 0.9, "red": 0.75}) == "red"
    assert kpi.rag(None, {"green": 1, "red": 2}) is None
    acts = pd.DataFrame({"activity": list("abcd"), "frequency": [10, 8, 5, 1]})
    edges = pd.DataFrame({"source": ["▶", "a", "b", "c", "a", "d"], "target": ["a", "b", "c", "■", "d", "■"],
                          "frequency": [10, 8, 5, 5, 1, 1], "median_seconds": [None, 60, 120, None, 5, None]})
    kept_a, kept_e = processmap.simplify(acts, edges, activity_share=0.75, path_share=0.2)
    assert set(kept_a["activity"]) == {"a", "b", "c"}
    for node in kept_a["activity"]:  # nothing kept is disconnected
        assert (kept_e["target"] == node).any() and (kept_e["source"] == node).any()
    dot = processmap.to_dot(kept_a, kept_e, "performance")
    assert dot.startswith("digraph") and '"a" -> "b"' in dot and "1 min" in dot


def test_health_queries_read_the_maintained_aggregates_with_the_same_result(tmp_path, monkeypatch):
    from analytics import incremental

    path = tmp_path / "store.duckdb"
    with open_store(path) as con:
        ingest_file(con, real_log("receipt/08_receipt.xes.gz"), progress=False)
        incremental.refresh(con)
    with open_store(path, read_only=True) as con:
        assert queries._fresh_aggregates(con)
        last = con.execute("SELECT max(ts) FROM events").fetchone()[0]
        start, end = queries.period_bounds(last, None, days=28)
        flt = ViewFilter(sources=(queries.source_names(con)[0],))
        args = dict(start=start.isoformat(), end=end.isoformat(), idle_days=10, now=last.isoformat())

        def answers() -> list:
            return [queries.flow_kpis(con, f, **args) for f in (None, flt)] + [
                queries.open_by(con, None, by="last_activity", idle_days=10, now=last.isoformat()).to_dict("list"),
                queries.kpi_cases(con, None, kind="completed", **args).to_dict("list"),
                queries.top_variants(con, None, top=15).to_dict("list"),
                queries.top_variants(con, flt, top=15).to_dict("list"),
                queries.on_time_share(con, None, sla={"T02 Check confirmation of receipt": 3600.0}, **args),
                queries.on_time_share(con, flt, sla={"T02 Check confirmation of receipt": 3600.0}, **args),
                queries.on_time_share(con, flt, sla={"T02 Check confirmation of receipt": 60.0}, **args)]

        fast = answers()
        with snapshot.frozen({}):  # as in the dashboard: the late cases read once per SLA, per handle
            assert answers() == answers() == fast
        assert fast[-1]["on_time"] < fast[-2]["on_time"]  # a tighter SLA finds more cases late
        monkeypatch.setattr(queries, "_fresh_aggregates", lambda _con: False)
        assert answers() == fast
        assert fast[0]["current"]["started"] > 0


def test_deviation_breakdown_from_a_cached_conformance_result():
    from dashboard.engines import breakdown

    per_case = pd.DataFrame({"case_id": ["a", "b", "c", "d", "e"],
                             "deviation_types": ["skip X", "", "skip X, extra Y", "extra Y", None]})
    values = pd.DataFrame({"case_id": ["a", "b", "c", "d", "e"],
                           "value": ["North", "North", "South", "South", "South"]})
    got = breakdown(per_case, values, "skip X")
    assert list(got["value"]) == ["North", "South"]
    assert list(got["cases"]) == [2, 3] and list(got["with_deviation"]) == [1, 1]
    assert got["lift"].tolist() == pytest.approx([0.5 / 0.4, (1 / 3) / 0.4])
    assert breakdown(per_case, values, "extra").empty is False  # a prefix is not a deviation type
    assert breakdown(per_case, values, "extra")["with_deviation"].sum() == 0


def test_bottleneck_waits_in_one_pass_equal_the_three_queries(receipt):
    """All three tables at once, and each alone (one per Bottlenecks tab), equal the three queries.
    (The same from the maintained pairs: tests/test_dashboard_fastpaths.py.)"""
    assert not queries._fresh_aggregates(receipt)  # this store answers from the events
    flt = ViewFilter(sources=(queries.source_names(receipt)[0],))
    for f in (None, flt):
        expected = {"handoffs": queries.handoff_waits(receipt, f, top=30),
                    "weeks": queries.wait_by_activity_week(receipt, f, top=15),
                    "resources": queries.wait_by_resource(receipt, f, top=30)}
        got = queries.bottleneck_waits(receipt, f, handoff_top=30, activity_top=15, resource_top=30)
        assert set(got) == set(expected)
        for part in queries.BOTTLENECK_PARTS:
            pd.testing.assert_frame_equal(got[part], expected[part])
            alone = queries.bottleneck_waits(receipt, f, handoff_top=30, activity_top=15, resource_top=30, parts=[part])
            assert list(alone) == [part]
            pd.testing.assert_frame_equal(alone[part], expected[part])
    with pytest.raises(ValueError, match="parts"):
        queries.bottleneck_waits(receipt, None, parts=["queues"])


def test_prefetching_a_result_that_is_already_done_does_not_deadlock():
    """A future that finishes before its done-callback is added runs the callback at once, in the
    calling thread, while prefetch still holds its lock: the lock must be re-entrant."""
    import threading
    from concurrent.futures import Future

    from dashboard import data

    done: Future = Future()
    done.set_result(None)
    finished = threading.Event()

    def register() -> None:
        with data._PENDING_LOCK:
            data._PENDING[("k",)] = done
            done.add_done_callback(lambda _f: data._forget(("k",)))
        finished.set()

    worker = threading.Thread(target=register, daemon=True)
    worker.start()
    assert finished.wait(timeout=30), "prefetch's bookkeeping deadlocked on its own lock"
    assert ("k",) not in data._PENDING

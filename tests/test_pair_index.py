"""The in-memory pair indexes (analytics.pair_index) give DuckDB's own grouped statistics for any
selection of whole cases, on the demo world: counts, cases, sums, minimum, maximum and the exact
median and p90, per grouping the dashboard uses; the DFG and the Bottlenecks tables read from them
equal the ones computed in SQL."""

from __future__ import annotations

import importlib
import shutil

import numpy as np
import pandas as pd
import pytest
from e2e.worlds import demo_store

from analytics import pair_index
from analytics.filters import Filter
from dashboard import queries
from ingest.store import bump_data_version, open_store

dfg_module = importlib.import_module("analytics.dfg")
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    db, _config = demo_store(tmp_path_factory.getbasetemp())
    return db


@pytest.fixture
def con(demo_db):
    pair_index.forget()
    with open_store(demo_db, read_only=True) as con:
        yield con
    pair_index.forget()


def selections(con) -> dict[str, np.ndarray | None]:
    keys = np.array(sorted(k for (k,) in con.execute("SELECT case_key FROM cases").fetchall()), dtype=np.int64)
    rng = np.random.default_rng(7)
    return {"all": None, "none": np.zeros(0, dtype=np.int64), "half": keys[rng.random(len(keys)) < 0.5],
            "a few": keys[:5], "one source": con.execute(
                "SELECT DISTINCT case_key FROM events WHERE source_id = (SELECT min(source_id) FROM events)").fetchnumpy()["case_key"]}


def sql_stats(con, grouping: str, keys) -> pd.DataFrame:
    cols = pair_index.GROUPINGS[grouping]
    exprs = ", ".join(f"{sql} AS {name}" for name, sql in cols.items())
    con.register("pl_keys", pd.DataFrame({"case_key": np.asarray(keys if keys is not None else [], dtype=np.int64)}))
    where = "" if keys is None else "WHERE case_key IN (SELECT case_key FROM pl_keys)"
    try:
        return con.execute(f"""
            WITH p AS (SELECT {exprs}, epoch(tgt_ts - src_ts) AS d, first_in_case, case_key FROM an_edges {where})
            SELECT {', '.join(cols)}, count(*) AS frequency, count(DISTINCT case_key) AS cases, sum(d) AS total_seconds,
                   avg(d) AS mean_seconds, min(d) AS min_seconds, max(d) AS max_seconds,
                   quantile_cont(d, 0.5) AS "q0.5", quantile_cont(d, 0.9) AS "q0.9"
            FROM p GROUP BY ALL ORDER BY ALL NULLS LAST""").df()
    finally:
        con.unregister("pl_keys")


@pytest.mark.parametrize("grouping", list(pair_index.GROUPINGS))
def test_stats_of_any_selection_equal_duckdbs_grouped_aggregates(con, grouping):
    index = pair_index.PairIndex.build(con, grouping)
    assert index.pairs == con.execute("SELECT count(*) FROM an_edges").fetchone()[0]
    for name, keys in selections(con).items():
        mask = None if keys is None else pair_index.selection_mask(keys)
        got = index.stats(mask).sort_values(list(pair_index.GROUPINGS[grouping]), na_position="last").reset_index(drop=True)
        want = sql_stats(con, grouping, keys)
        assert len(got) == len(want), name
        if name == "none":
            assert got.empty
            continue
        for col in pair_index.GROUPINGS[grouping]:
            assert got[col].astype(object).where(got[col].notna(), None).tolist() == \
                want[col].astype(object).where(want[col].notna(), None).tolist(), (name, col)
        assert got["frequency"].tolist() == want["frequency"].tolist(), name
        if grouping == "edge":  # the first pair of an edge in a case is flagged: counting them is exact
            assert got["cases"].tolist() == want["cases"].tolist(), name
        else:
            assert "cases" not in got
        for col in ("min_seconds", "max_seconds", "q0.5", "q0.9"):  # the same doubles, bit for bit
            np.testing.assert_array_equal(got[col], want[col], err_msg=f"{name} {col}")
        for col in ("total_seconds", "mean_seconds"):  # summed in whole microseconds here, in doubles there
            np.testing.assert_allclose(got[col], want[col], rtol=1e-12, atol=1e-6, err_msg=f"{name} {col}")


def test_the_dfg_of_a_filter_from_the_index_equals_the_sql_one(con):
    sources = [r[0] for r in con.execute("SELECT name FROM sources ORDER BY source_id").fetchall()]
    first, last = con.execute("SELECT min(ts), max(ts) FROM events").fetchone()
    middle = (first + (last - first) / 2).isoformat()
    filters = [Filter(event_attributes={"source": [sources[1]]}),  # the dashboard's source filter: whole cases
               Filter(variants_top=3), Filter(time_from=middle)]
    without = [dfg_module.dfg(con, f) for f in filters]
    pair_index.ensure(con, "edge")
    assert pair_index.lookup(con, "edge") is not None
    for f, before in zip(filters, without, strict=True):
        after = dfg_module.dfg(con, f)
        pd.testing.assert_frame_equal(after.edges, before.edges, check_exact=False, rtol=1e-12)
        assert (after.start_activities, after.end_activities, after.activities, after.cases) == \
            (before.start_activities, before.end_activities, before.activities, before.cases)
        assert after.edges["frequency"].sum() < dfg_module.dfg(con).edges["frequency"].sum()


def test_the_bottleneck_tables_of_a_filter_from_the_indexes_equal_the_sql_ones(con):
    from dashboard.filters import ViewFilter

    sources = queries.source_names(con)
    flt = ViewFilter(sources=(sources[1],))
    flt = flt.on_summaries(queries._source_mask(con, flt.sources))
    before = queries.bottleneck_waits(con, flt)
    pair_index.ensure(con, *queries.BOTTLENECK_PARTS)
    after = queries.bottleneck_waits(con, flt)
    for part in queries.BOTTLENECK_PARTS:
        pd.testing.assert_frame_equal(after[part], before[part], check_exact=False, rtol=1e-12)
    assert not after["handoffs"].empty and not after["weeks"].empty


def test_an_index_serves_only_the_data_version_it_was_built_from(demo_db, tmp_path):
    pair_index.forget()
    db = tmp_path / "store.duckdb"
    shutil.copy(demo_db, db)
    with open_store(db, read_only=True) as con:
        assert pair_index.lookup(con, "edge") is None
        built = pair_index.ensure(con, "edge")["edge"]
        assert pair_index.lookup(con, "edge") is built
    with open_store(db) as con:
        con.execute("BEGIN TRANSACTION")
        bump_data_version(con)
        con.execute("COMMIT")
    with open_store(db, read_only=True) as con:
        assert pair_index.lookup(con, "edge") is None  # the store changed: queries go back to SQL
        assert pair_index.ensure(con, "edge")["edge"] is not built
    pair_index.forget()



def test_ensure_makes_each_index_usable_as_soon_as_it_is_built(con, monkeypatch):
    """A page's first tab reads its grouping while the other tabs' are still being built."""
    seen_while_building: dict[str, list[str]] = {}
    build = pair_index.build_many

    def watched(c, groupings):
        seen_while_building[groupings[0]] = [g for g in pair_index.GROUPINGS if pair_index.lookup(c, g) is not None]
        return build(c, groupings)

    monkeypatch.setattr(pair_index, "build_many", watched)
    built = pair_index.ensure(con, "handoffs", "weeks", "resources")
    assert list(seen_while_building) == ["handoffs", "weeks", "resources"]  # in the order asked
    assert seen_while_building == {"handoffs": [], "weeks": ["handoffs"], "resources": ["handoffs", "weeks"]}
    assert all(pair_index.lookup(con, g) is built[g] for g in built)

"""Directly-follows graph with frequency (events, cases) and performance per edge."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb
import pandas as pd

from analytics import pair_index
from analytics.calendar import BusinessCalendar, duration_sql
from analytics.filters import Filter
from analytics.incremental import edge_stats_fresh
from analytics.plan import activity_names, plan
from analytics.queries import dfg_sql, stored_dfg_sql

EDGE_FIELDS = ["source", "target", "frequency", "cases", "mean_seconds", "median_seconds", "p90_seconds",
               "min_seconds", "max_seconds", "total_seconds"]


@dataclass
class DFGResult:
    """``edges``: one row per edge (see :data:`EDGE_FIELDS`); start/end activities with case counts;
    ``activities``: events per activity (the node sizes)."""

    edges: pd.DataFrame
    start_activities: dict[str, int]
    end_activities: dict[str, int]
    activities: dict[str, int] = field(default_factory=dict)
    cases: int = 0
    working_time: bool = False

    def to_dict(self) -> dict[str, Any]:
        edges = self.edges.astype(object).where(self.edges.notna(), None)
        return {
            "edges": edges.to_dict(orient="records"),
            "start_activities": self.start_activities,
            "end_activities": self.end_activities,
            "activities": self.activities,
            "cases": self.cases,
            "working_time": self.working_time,
        }


def dfg(con: duckdb.DuckDBPyConnection, flt: Filter | None = None, *, calendar: BusinessCalendar | None = None,
        use_aggregates: bool | None = None) -> DFGResult:
    """The DFG of the filtered log; durations in working time when ``calendar`` is given."""
    p = plan(con, flt, use_aggregates)
    names = activity_names(con)
    seconds = duration_sql(con, "src_ts", "tgt_ts", calendar)
    order = " ORDER BY frequency DESC, src_id, tgt_id"
    index = pair_index.lookup(con, "edge") if p.fast and p.filtered and calendar is None else None
    if p.fast and not p.filtered and calendar is None and edge_stats_fresh(con):
        edges = con.execute(stored_dfg_sql() + order).df()  # maintained per-edge statistics (same numbers)
    elif index is not None:  # the kept cases' pairs from the in-memory index (same numbers)
        edges = edges_from_index(index, con.execute(p.sql("SELECT case_key FROM kc")).fetchnumpy()["case_key"])
    else:
        edges = con.execute(p.sql(dfg_sql("ed", seconds, exact_cases=p.fast) + order)).df()
    edges.insert(0, "source", edges.pop("src_id").map(names))
    edges.insert(1, "target", edges.pop("tgt_id").map(names))
    for col in ("frequency", "cases"):
        edges[col] = edges[col].astype("int64")
    # the start and end activities and the case count from one grouping of the case summaries
    pairs = con.execute(p.sql("SELECT first_activity_id, last_activity_id, count(*) FROM cs GROUP BY ALL")).fetchall()
    firsts: dict[int, int] = {}
    lasts: dict[int, int] = {}
    for first_id, last_id, n in pairs:
        firsts[first_id] = firsts.get(first_id, 0) + n
        lasts[last_id] = lasts.get(last_id, 0) + n
    start = {names[a]: int(n) for a, n in sorted(firsts.items(), key=lambda kv: (-kv[1], names[kv[0]]))}
    end = {names[a]: int(n) for a, n in sorted(lasts.items(), key=lambda kv: (-kv[1], names[kv[0]]))}
    n_cases = int(sum(n for *_, n in pairs))
    # every event is either the first of its case or the target of exactly one pair: no scan of the events needed
    counts = edges.groupby("target")["frequency"].sum().to_dict() if len(edges) else {}
    for a, n in start.items():
        counts[a] = counts.get(a, 0) + n
    acts = {a: int(n) for a, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))}
    return DFGResult(edges=edges.reset_index(drop=True), start_activities=start, end_activities=end,
                     activities=acts, cases=n_cases, working_time=calendar is not None)


def edges_from_index(index: pair_index.PairIndex, keys) -> pd.DataFrame:
    """The rows of :func:`analytics.queries.dfg_sql` for the cases ``keys`` from an ``edge`` pair index."""
    st = index.stats(pair_index.selection_mask(keys))
    edges = st.rename(columns={"q0.5": "median_seconds", "q0.9": "p90_seconds"})[
        ["src_id", "tgt_id", "frequency", "cases", "mean_seconds", "median_seconds", "p90_seconds",
         "min_seconds", "max_seconds", "total_seconds"]]
    return edges.sort_values(["frequency", "src_id", "tgt_id"], ascending=[False, True, True]).reset_index(drop=True)

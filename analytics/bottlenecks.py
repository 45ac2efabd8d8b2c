"""Where cases wait: waiting time per edge and per activity, broken down by resource, team, system, week.

The waiting time of a directly-follows pair ``a -> b`` is the time from ``a`` to ``b`` in the case:
the time the work lay between two steps. Groups are ranked by their total waiting time, with their
share of all waiting, and hand-offs (the two events in different source systems or teams) are
counted so that work falling between tools or teams stands out.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from analytics.calendar import BusinessCalendar, duration_sql
from analytics.filters import Filter, FilterError
from analytics.plan import plan
from analytics.teams import Teams

DIMENSIONS: dict[str, list[tuple[str, str]]] = {
    "edge": [("source", "sa.name"), ("target", "ta.name")],
    "activity": [("activity", "ta.name")],
    "resource": [("resource", "x.tgt_resource")],
    "team": [("team", "x.tgt_team")],
    "source": [("source_system", "x.tgt_system")],
    "week": [("week", "x.week")],
    "handoff": [("from_system", "x.src_system"), ("to_system", "x.tgt_system"),
                ("from_team", "x.src_team"), ("to_team", "x.tgt_team")],
}


def bottlenecks(con: duckdb.DuckDBPyConnection, flt: Filter | None = None, by: str | list[str] = "edge", *,
                teams: Teams | None = None, calendar: BusinessCalendar | None = None,
                use_aggregates: bool | None = None, limit: int | None = None) -> pd.DataFrame:
    """Waiting time grouped by ``by`` (one or more of :data:`DIMENSIONS`), largest total first."""
    dims = [by] if isinstance(by, str) else list(by)
    unknown = [d for d in dims if d not in DIMENSIONS]
    if unknown or not dims:
        raise FilterError(f"unknown bottleneck breakdown {unknown or dims}", hint=f"use one or more of {', '.join(DIMENSIONS)}",
                          where={"field": "by"})
    teams = teams or Teams()
    if teams.mapping:
        teams.register(con)
    p = plan(con, flt, use_aggregates)
    wait = duration_sql(con, "ed.src_ts", "ed.tgt_ts", calendar)
    need_events = bool(teams.attribute) and any(d in ("team", "handoff") for d in dims)
    join_events = ("LEFT JOIN events se ON se.event_id = ed.src_event_id "
                   "LEFT JOIN events te ON te.event_id = ed.tgt_event_id") if need_events else ""
    cols = [c for d in dims for c in DIMENSIONS[d]]
    select_dims = ", ".join(f"{expr} AS {name}" for name, expr in cols)
    group = ", ".join(expr for _, expr in cols)
    lim = f" LIMIT {int(limit)}" if limit else ""
    df = con.execute(p.sql(f"""
        SELECT {select_dims}, count(*) AS transitions, count(DISTINCT x.case_key) AS cases,
               sum(x.w) AS waiting_total_seconds, sum(x.w) / nullif(sum(sum(x.w)) OVER (), 0) AS share_of_waiting,
               avg(x.w) AS waiting_mean_seconds, median(x.w) AS waiting_median_seconds,
               quantile_cont(x.w, 0.9) AS waiting_p90_seconds,
               avg(CASE WHEN x.src_system IS DISTINCT FROM x.tgt_system THEN 1.0 ELSE 0.0 END) AS system_handoff_share,
               avg(CASE WHEN x.src_team IS DISTINCT FROM x.tgt_team THEN 1.0 ELSE 0.0 END) AS team_handoff_share
        FROM (
            SELECT ed.case_key, ed.src_id, ed.tgt_id, ed.tgt_resource, {wait} AS w,
                   ss.name AS src_system, ts_.name AS tgt_system,
                   {teams.team_sql('ed.src_resource', 'se' if need_events else None)} AS src_team,
                   {teams.team_sql('ed.tgt_resource', 'te' if need_events else None)} AS tgt_team,
                   CAST(date_trunc('week', ed.tgt_ts) AS DATE) AS week
            FROM ed
            LEFT JOIN sources ss ON ss.source_id = ed.src_source_id
            LEFT JOIN sources ts_ ON ts_.source_id = ed.tgt_source_id
            {join_events}
        ) x
        JOIN activities sa ON sa.activity_id = x.src_id
        JOIN activities ta ON ta.activity_id = x.tgt_id
        GROUP BY {group}
        ORDER BY waiting_total_seconds DESC NULLS LAST{lim}
    """)).df()
    df["handoff"] = (df["system_handoff_share"] > 0.5) | (df["team_handoff_share"] > 0.5)
    for col in ("transitions", "cases"):
        df[col] = df[col].astype("int64")
    return df

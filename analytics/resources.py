"""Resources: workload per resource (or team) and handovers of work between them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb
import pandas as pd

from analytics.calendar import BusinessCalendar, duration_sql
from analytics.filters import Filter, FilterError
from analytics.plan import plan
from analytics.teams import Teams


@dataclass
class ResourcesResult:
    workload: pd.DataFrame  # resource|team, events, cases, activities, share_of_events, first_event, last_event
    handovers: pd.DataFrame  # from, to, handovers, cases, mean/median_seconds

    def to_dict(self) -> dict[str, Any]:
        def rec(df: pd.DataFrame) -> list[dict]:
            return df.astype(object).where(df.notna(), None).to_dict(orient="records")

        return {"workload": rec(self.workload), "handovers": rec(self.handovers)}


def resources(con: duckdb.DuckDBPyConnection, flt: Filter | None = None, by: str = "resource", *,
              teams: Teams | None = None, calendar: BusinessCalendar | None = None,
              use_aggregates: bool | None = None) -> ResourcesResult:
    """Workload and handovers; ``by="team"`` groups resources into teams (see :class:`~analytics.teams.Teams`).

    A handover is a directly-follows pair whose two events were done by different resources (teams).
    """
    if by not in ("resource", "team"):
        raise FilterError(f"unknown resource grouping {by!r}", hint="use resource or team", where={"field": "by"})
    teams = teams or Teams()
    if teams.mapping:
        teams.register(con)
    p = plan(con, flt, use_aggregates)
    who_ev = "e.resource" if by == "resource" else teams.team_sql("e.resource", "e")
    if by == "resource":
        src, tgt, join = "ed.src_resource", "ed.tgt_resource", ""
    else:
        src, tgt = teams.team_sql("ed.src_resource", "se"), teams.team_sql("ed.tgt_resource", "te")
        join = ("LEFT JOIN events se ON se.event_id = ed.src_event_id LEFT JOIN events te ON te.event_id = ed.tgt_event_id"
                if teams.attribute else "")
    workload = con.execute(p.sql(f"""
        SELECT who AS {by}, count(*) AS events, count(DISTINCT case_key) AS cases, count(DISTINCT activity_id) AS activities,
               count(*) / sum(count(*)) OVER () AS share_of_events, min(ts) AS first_event, max(ts) AS last_event
        FROM (SELECT {who_ev} AS who, e.case_key, e.activity_id, e.ts FROM ev e) x
        GROUP BY who ORDER BY events DESC, who
    """)).df()
    d = duration_sql(con, "ed.src_ts", "ed.tgt_ts", calendar)
    handovers = con.execute(p.sql(f"""
        SELECT src AS "from", tgt AS "to", count(*) AS handovers, count(DISTINCT case_key) AS cases,
               avg(d) AS mean_seconds, median(d) AS median_seconds
        FROM (SELECT {src} AS src, {tgt} AS tgt, ed.case_key, {d} AS d FROM ed {join}) x
        WHERE src IS NOT NULL AND tgt IS NOT NULL AND src <> tgt
        GROUP BY src, tgt ORDER BY handovers DESC, src, tgt
    """)).df()
    for df, cols in ((workload, ("events", "cases", "activities")), (handovers, ("handovers", "cases"))):
        for col in cols:
            df[col] = df[col].astype("int64")
    return ResourcesResult(workload=workload, handovers=handovers)

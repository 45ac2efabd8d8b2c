"""KPIs over time: arrivals, completions, work in progress and throughput time per day, week or month."""

from __future__ import annotations

from datetime import datetime

import duckdb
import pandas as pd

from analytics.calendar import BusinessCalendar, duration_sql
from analytics.cases import CaseStatusRule, now_utc
from analytics.filters import Filter, FilterError, lit
from analytics.plan import plan

FREQS = ("day", "week", "month")


def kpis(con: duckdb.DuckDBPyConnection, flt: Filter | None = None, freq: str = "week", *, now: datetime | None = None,
         status: CaseStatusRule | None = None, calendar: BusinessCalendar | None = None,
         use_aggregates: bool | None = None) -> pd.DataFrame:
    """One row per period (every period between the first start and the last event, also empty ones).

    - ``arrivals``: cases whose first event falls in the period;
    - ``completions``: closed cases (see :class:`~analytics.cases.CaseStatusRule`) whose last event falls in it;
    - ``wip``: cases started and not yet completed at the end of the period;
    - ``throughput_median_seconds``, ``throughput_p90_seconds``: of the cases completed in the period;
    - ``prev_*``: the same figures for the previous period, and ``*_change`` as a ratio to it.
    """
    if freq not in FREQS:
        raise FilterError(f"unknown period {freq!r}", hint=f"use one of {', '.join(FREQS)}", where={"field": "freq"})
    now = now or now_utc()
    status = status or CaseStatusRule()
    p = plan(con, flt, use_aggregates)
    d = duration_sql(con, "cs.start_ts", "cs.end_ts", calendar)
    age = f"epoch({lit(now)} - cs.end_ts)"
    df = con.execute(p.sql(f"""
        , c AS (
            SELECT cs.start_ts, cs.end_ts, {d} AS d, ({status.closed_sql('a.name', age)}) AS closed
            FROM cs JOIN activities a ON a.activity_id = cs.last_activity_id
        ),
        periods AS (
            SELECT CAST(unnest(generate_series(date_trunc('{freq}', min(start_ts)), date_trunc('{freq}', max(end_ts)),
                                               INTERVAL 1 {freq})) AS TIMESTAMP) AS period
            FROM c
        ),
        arr AS (SELECT date_trunc('{freq}', start_ts) AS period, count(*) AS arrivals FROM c GROUP BY 1),
        comp AS (SELECT date_trunc('{freq}', end_ts) AS period, count(*) AS completions,
                        median(d) AS throughput_median_seconds, quantile_cont(d, 0.9) AS throughput_p90_seconds
                 FROM c WHERE closed GROUP BY 1),
        grid AS (
            SELECT p.period, coalesce(arr.arrivals, 0) AS arrivals, coalesce(comp.completions, 0) AS completions,
                   comp.throughput_median_seconds, comp.throughput_p90_seconds
            FROM periods p LEFT JOIN arr USING (period) LEFT JOIN comp USING (period)
        )
        SELECT period, arrivals, completions,
               sum(arrivals - completions) OVER (ORDER BY period ROWS UNBOUNDED PRECEDING) AS wip,
               throughput_median_seconds, throughput_p90_seconds
        FROM grid ORDER BY period
    """)).df()
    for col in ("arrivals", "completions", "wip"):
        df[col] = df[col].astype("int64")
    for col in ("arrivals", "completions", "wip", "throughput_median_seconds", "throughput_p90_seconds"):
        df["prev_" + col] = df[col].shift(1)
        df[col + "_change"] = df[col] / df["prev_" + col].where(df["prev_" + col] != 0) - 1
    return df

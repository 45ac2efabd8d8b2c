"""Activity statistics: frequency, cases, rework, service time and waiting time before the activity."""

from __future__ import annotations

import duckdb
import pandas as pd

from analytics.calendar import BusinessCalendar, duration_sql
from analytics.filters import Filter
from analytics.plan import plan

#: lifecycle values (lower-cased) that open and close an activity instance
START, COMPLETE = "start", "complete"


def activities(con: duckdb.DuckDBPyConnection, flt: Filter | None = None, *, calendar: BusinessCalendar | None = None,
               use_aggregates: bool | None = None) -> pd.DataFrame:
    """One row per activity, most frequent first.

    - ``frequency``: events (lifecycle rows count separately, as in pm4py); ``instances``: activity
      executions (a start/complete pair is one); ``cases``, ``case_share``;
    - ``rework_cases``: cases where the activity is executed more than once; ``rework_instances``: executions
      beyond the first in a case;
    - ``service_*_seconds``: from a ``start`` row to the next ``complete`` row of the same activity in the case,
      or ``ts - start_ts`` when the source gives both on one row (NaN when neither exists);
    - ``waiting_*_seconds``: from the previous event of the case to the start of the execution.
    """
    p = plan(con, flt, use_aggregates)
    service = duration_sql(con, "inst_start", "ts", calendar)
    waiting = duration_sql(con, "prev_ts", "inst_start", calendar)
    df = con.execute(p.sql(f"""
        , marked AS (
            SELECT case_key, activity_id, ts, start_ts, event_id, lower(coalesce(lifecycle, '')) AS lc,
                   lag(ts) OVER (PARTITION BY case_key ORDER BY ts, event_id) AS prev_ts,
                   lag(lower(coalesce(lifecycle, ''))) OVER (PARTITION BY case_key, activity_id ORDER BY ts, event_id) AS prev_lc_same,
                   lag(ts) OVER (PARTITION BY case_key, activity_id ORDER BY ts, event_id) AS prev_ts_same
            FROM ev
        ),
        inst AS (  -- one row per execution: the row that completes it, or a lone start / other row
            SELECT case_key, activity_id, ts,
                   CASE WHEN lc = '{COMPLETE}' AND coalesce(prev_lc_same, '') = '{START}' THEN prev_ts_same
                        WHEN start_ts IS NOT NULL THEN start_ts END AS inst_start,
                   prev_ts
            FROM marked
            WHERE NOT (lc = '{COMPLETE}' AND coalesce(prev_lc_same, '') = '{START}')
               OR lc = '{COMPLETE}'
        ),
        first_rows AS (  -- the row where an execution begins, to measure the wait before it
            SELECT case_key, activity_id, coalesce(start_ts, ts) AS inst_start, prev_ts
            FROM marked WHERE NOT (lc = '{COMPLETE}' AND coalesce(prev_lc_same, '') = '{START}')
        ),
        per_case AS (
            SELECT activity_id, case_key, count(*) AS n FROM first_rows GROUP BY activity_id, case_key
        )
        SELECT a.name AS activity, f.frequency, pc.instances, pc.cases, pc.cases / (SELECT count(*) FROM cs) AS case_share,
               pc.rework_cases, pc.rework_instances,
               s.service_mean_seconds, s.service_median_seconds, s.service_p90_seconds,
               w.waiting_mean_seconds, w.waiting_median_seconds, w.waiting_p90_seconds, w.waiting_total_seconds
        FROM (SELECT activity_id, count(*) AS frequency FROM ev GROUP BY activity_id) f
        JOIN activities a USING (activity_id)
        JOIN (SELECT activity_id, sum(n) AS instances, count(*) AS cases, count(*) FILTER (WHERE n > 1) AS rework_cases,
                     sum(n - 1) AS rework_instances FROM per_case GROUP BY activity_id) pc USING (activity_id)
        LEFT JOIN (SELECT activity_id, avg(d) AS service_mean_seconds, median(d) AS service_median_seconds,
                          quantile_cont(d, 0.9) AS service_p90_seconds
                   FROM (SELECT activity_id, {service} AS d FROM inst WHERE inst_start IS NOT NULL) x GROUP BY activity_id) s
               USING (activity_id)
        LEFT JOIN (SELECT activity_id, avg(d) AS waiting_mean_seconds, median(d) AS waiting_median_seconds,
                          quantile_cont(d, 0.9) AS waiting_p90_seconds, sum(d) AS waiting_total_seconds
                   FROM (SELECT activity_id, {waiting} AS d FROM first_rows WHERE prev_ts IS NOT NULL) x GROUP BY activity_id) w
               USING (activity_id)
        ORDER BY f.frequency DESC, a.name
    """)).df()
    for col in ("frequency", "instances", "cases", "rework_cases", "rework_instances"):
        df[col] = df[col].astype("int64")
    return df

"""Variants: the distinct activity sequences, with number and share of cases and throughput times."""

from __future__ import annotations

import duckdb
import pandas as pd

from analytics.calendar import BusinessCalendar, duration_sql
from analytics.filters import Filter
from analytics.plan import activity_names, plan


def variants(con: duckdb.DuckDBPyConnection, flt: Filter | None = None, top: int | None = None, *,
             calendar: BusinessCalendar | None = None, use_aggregates: bool | None = None) -> pd.DataFrame:
    """Most frequent first: variant_id, activities (list of names), cases, share, cumulative_share,
    events, mean/median/p90/min/max throughput seconds."""
    p = plan(con, flt, use_aggregates)
    d = duration_sql(con, "start_ts", "end_ts", calendar)
    limit = f" LIMIT {int(top)}" if top else ""
    df = con.execute(p.sql(f"""
        SELECT v.variant_id, vt.trace, v.cases, v.cases / sum(v.cases) OVER () AS share,
               sum(v.cases) OVER (ORDER BY v.cases DESC, v.variant_id ROWS UNBOUNDED PRECEDING)
                   / sum(v.cases) OVER () AS cumulative_share,
               len(vt.trace) AS events, v.mean_seconds, v.q[1] AS median_seconds, v.q[2] AS p90_seconds, v.min_seconds,
               v.max_seconds
        FROM (SELECT variant_id, count(*) AS cases, avg(d) AS mean_seconds, quantile_cont(d, [0.5, 0.9]) AS q,
                     min(d) AS min_seconds, max(d) AS max_seconds
              FROM (SELECT variant_id, {d} AS d FROM cs) x GROUP BY variant_id) v
        JOIN vt USING (variant_id)
        ORDER BY v.cases DESC, v.variant_id{limit}
    """)).df()
    names = activity_names(con)
    df.insert(1, "activities", [[names[a] for a in t] for t in df.pop("trace")])
    df["cases"] = df["cases"].astype("int64")
    return df

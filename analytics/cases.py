"""The case table: one row per case with its timing, size, position and status."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb
import pandas as pd

from analytics.calendar import BusinessCalendar, duration_sql
from analytics.filters import Filter, lit, lits
from analytics.incremental import case_rows_fresh
from analytics.plan import fetch_df, plan
from processlens.errors import ConfigError


@dataclass
class CaseStatusRule:
    """When a case counts as closed: its last activity is an end activity, or it has been idle past the
    horizon. With neither configured every case counts as closed (a file is a finished extract)."""

    end_activities: list[str] = field(default_factory=list)
    idle_horizon_seconds: float | None = None

    @classmethod
    def from_settings(cls, settings) -> CaseStatusRule:
        """``[analytics] end_activities = [...]`` and ``idle_horizon_days = 30``."""
        sec = settings.raw.get("analytics", {}) if settings is not None else {}
        days = sec.get("idle_horizon_days")
        if days is not None and (not isinstance(days, int | float) or days <= 0):
            raise ConfigError(f"[analytics] idle_horizon_days = {days!r} is not a positive number",
                              where={"field": "analytics.idle_horizon_days"}, hint="write e.g. idle_horizon_days = 30")
        return cls(list(sec.get("end_activities", [])), days * 86400.0 if days else None)

    def closed_sql(self, last_activity: str, age: str) -> str:
        conds = []
        if self.end_activities:
            conds.append(f"{last_activity} IN ({lits(self.end_activities)})")
        if self.idle_horizon_seconds is not None:
            conds.append(f"{age} > {float(self.idle_horizon_seconds)!r}")
        return " OR ".join(conds) if conds else "TRUE"


def now_utc() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def cases(con: duckdb.DuckDBPyConnection, flt: Filter | None = None, now: datetime | None = None, *,
          status: CaseStatusRule | None = None, calendar: BusinessCalendar | None = None,
          use_aggregates: bool | None = None, limit: int | None = None) -> pd.DataFrame:
    """case_id, start, end, duration_seconds, events, current_activity, last_resource, last_source,
    age_seconds (since the last event, at ``now``), status ('open' or 'closed'), variant_id.

    Rows come in no particular order (sort the DataFrame as needed); with ``limit`` the first cases by key."""
    now = now or now_utc()
    if now.tzinfo is not None:
        now = now.astimezone(UTC).replace(tzinfo=None)
    status = status or CaseStatusRule()
    p = plan(con, flt, use_aggregates)
    dur = duration_sql(con, "cs.start_ts", "cs.end_ts", calendar)
    age = duration_sql(con, "cs.end_ts", lit(now), calendar, until=now)
    # a full sort of a million rows with their strings costs more than the query: only order for a limit
    lim = f" ORDER BY cs.case_key LIMIT {int(limit)}" if limit else ""
    if p.fast and case_rows_fresh(con):  # the maintained rows carry the case id: no join with `cases`
        rows = "an_case_rows cs" + (" WHERE cs.case_key IN (SELECT case_key FROM kc)" if p.filtered else "")
    else:
        rows = "cs JOIN (SELECT case_key, case_id FROM cases) c USING (case_key)"
    df = fetch_df(con, p.sql(f"""
        SELECT cs.case_id, cs.start_ts AS start, cs.end_ts AS "end", {dur} AS duration_seconds, cs.n_events AS events,
               a.name AS current_activity, cs.last_resource, s.name AS last_source, {age} AS age_seconds,
               CASE WHEN {status.closed_sql('a.name', age)} THEN 'closed' ELSE 'open' END AS status, cs.variant_id
        FROM (SELECT * FROM {rows}) cs
        JOIN activities a ON a.activity_id = cs.last_activity_id
        LEFT JOIN sources s ON s.source_id = cs.last_source_id{lim}
    """))
    return df

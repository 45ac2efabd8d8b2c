"""Did the actions help? Per rule and action type, against comparable cases that got no action.

For each delivered action: the case had last done activity *A* and had waited *W* when the action
was decided at *t*. Afterwards we measure the time until the case **moved on** (its next event
from a source system) and whether that happened **on time** (within the step's SLA after the
action, or within ``window`` when the step has none).

Comparable cases are those that never got an action and were in the same position: after *A*,
already waiting at least *W*. From history, each such wait (*A* followed by the next event after
a gap *G* > *W*) moved on after *G − W*; cases still waiting after *A* for longer than *W* count as
not (yet) moved on. The comparison is pooled over all actions of the group.
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import pandas as pd

from coordinator.audit import SOURCE

DEFAULT_WINDOW = 86400.0

TREATED_SQL = """
CREATE OR REPLACE TEMP TABLE _fx_treated AS
WITH acts AS (
    SELECT a.action_id, coalesce(a.rule, '(manual)') AS rule, a.action_type, a.case_id, a.decided_at AS t,
           coalesce(json_extract_string(a.details, '$.values.last_activity'),
                    json_extract_string(a.details, '$.values.step')) AS last_activity,
           coalesce(TRY_CAST(json_extract_string(a.details, '$.sla_seconds') AS DOUBLE), $window) AS window_s,
           TRY_CAST(json_extract_string(a.details, '$.last_ts') AS TIMESTAMP) AS last_ts
    FROM actions a WHERE a.status = 'delivered'
)
SELECT acts.*, epoch(acts.t - coalesce(acts.last_ts, acts.t)) AS waited_s,
       (SELECT min(e.ts) FROM event_log e WHERE e.case_id = acts.case_id AND e.source <> $src AND e.ts > acts.t) AS next_ts
FROM acts
"""

PAIRS_SQL = """
CREATE OR REPLACE TEMP TABLE _fx_pairs AS
SELECT activity, ts, lead(ts) OVER w AS next_ts
FROM event_log
WHERE source <> $src AND case_id NOT IN (SELECT case_id FROM actions WHERE status = 'delivered')
WINDOW w AS (PARTITION BY case_id ORDER BY ts, event_id)
"""

SUMMARY_SQL = """
WITH treated AS (
    SELECT rule, action_type, count(*) AS actions,
           avg(CASE WHEN next_ts IS NOT NULL THEN 1.0 ELSE 0.0 END) AS moved_on_share,
           median(epoch(next_ts - t)) AS median_seconds_to_move_on,
           avg(CASE WHEN next_ts IS NOT NULL AND epoch(next_ts - t) <= window_s THEN 1.0 ELSE 0.0 END) AS on_time_share
    FROM _fx_treated GROUP BY ALL
),
control AS (
    SELECT t.rule, t.action_type, count(*) AS comparable_waits,
           avg(CASE WHEN p.next_ts IS NOT NULL THEN 1.0 ELSE 0.0 END) AS moved_on_share,
           median(epoch(p.next_ts - p.ts) - t.waited_s) AS median_seconds_to_move_on,
           avg(CASE WHEN p.next_ts IS NOT NULL AND epoch(p.next_ts - p.ts) - t.waited_s <= t.window_s
                    THEN 1.0 ELSE 0.0 END) AS on_time_share
    FROM _fx_treated t
    JOIN _fx_pairs p ON p.activity = t.last_activity
     AND epoch(coalesce(p.next_ts, $now::TIMESTAMP) - p.ts) > t.waited_s
    GROUP BY ALL
)
SELECT t.rule, t.action_type, t.actions,
       t.moved_on_share, t.median_seconds_to_move_on, t.on_time_share,
       coalesce(c.comparable_waits, 0) AS comparable_waits,
       c.moved_on_share AS control_moved_on_share,
       c.median_seconds_to_move_on AS control_median_seconds_to_move_on,
       c.on_time_share AS control_on_time_share,
       t.on_time_share - c.on_time_share AS on_time_share_difference
FROM treated t LEFT JOIN control c USING (rule, action_type)
ORDER BY t.rule, t.action_type
"""


def effect(con: duckdb.DuckDBPyConnection, now: datetime | None = None, window_seconds: float = DEFAULT_WINDOW) -> pd.DataFrame:
    """One row per (rule, action_type): actions, treated and control outcomes, and the difference.

    ``now`` bounds the censored control waits (default: the latest event in the store).
    """
    if now is None:
        now = con.execute(f"SELECT coalesce(max(ts), now()::TIMESTAMP) FROM event_log WHERE source <> '{SOURCE}'").fetchone()[0]
    con.execute(TREATED_SQL, {"window": window_seconds, "src": SOURCE})
    con.execute(PAIRS_SQL, {"src": SOURCE})
    try:
        return con.execute(SUMMARY_SQL, {"now": now}).df()
    finally:
        con.execute("DROP TABLE IF EXISTS _fx_treated")
        con.execute("DROP TABLE IF EXISTS _fx_pairs")

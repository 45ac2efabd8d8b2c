"""The named SQL building blocks every analysis is made of.

Two relations carry almost everything: **edges** (one row per pair of consecutive events of a
case, event order ``ts, event_id``) and **case summaries** (one row per case). Both are written
once here, in standard SQL window functions and aggregates, and used twice: to build the
maintained tables ``an_edges`` / ``an_cases`` (:mod:`analytics.incremental`) and, when a filter
drops single events, directly over the filtered events (:mod:`analytics.plan`).
"""

from __future__ import annotations

EDGE_COLUMNS = (
    "case_key, src_event_id, tgt_event_id, src_id, tgt_id, src_ts, tgt_ts, src_resource, tgt_resource, "
    "src_source_id, tgt_source_id, first_in_case"
)
CASE_COLUMNS = (
    "case_key, start_ts, end_ts, n_events, first_activity_id, last_activity_id, last_event_id, last_resource, "
    "last_source_id, variant_id, source_mask"
)
#: bit ``source_id`` of ``an_cases.source_mask`` is set when the case has an event of that source (ids below this)
SOURCE_MASK_BITS = 64
SOURCE_BIT_SQL = f"CASE WHEN source_id < {SOURCE_MASK_BITS} THEN (1::UBIGINT << source_id::UBIGINT) ELSE 0::UBIGINT END"


def edges_sql(events: str, first_in_case: bool = True) -> str:
    """Directly-follows pairs of ``events`` (a relation with the columns of ``events``).

    ``first_in_case`` marks the first occurrence of each (source, target) pair in a case, so that
    "cases per edge" is a plain count; without it the column is NULL and callers count distinct cases.
    """
    first = (
        "row_number() OVER (PARTITION BY case_key, src_id, tgt_id ORDER BY src_ts, src_event_id) = 1"
        if first_in_case else "CAST(NULL AS BOOLEAN)"
    )
    return f"""
        SELECT case_key, src_event_id, tgt_event_id, src_id, tgt_id, src_ts, tgt_ts, src_resource, tgt_resource,
               src_source_id, tgt_source_id, {first} AS first_in_case
        FROM (
            SELECT case_key,
                   event_id AS src_event_id, lead(event_id) OVER w AS tgt_event_id,
                   activity_id AS src_id, lead(activity_id) OVER w AS tgt_id,
                   ts AS src_ts, lead(ts) OVER w AS tgt_ts,
                   resource AS src_resource, lead(resource) OVER w AS tgt_resource,
                   source_id AS src_source_id, lead(source_id) OVER w AS tgt_source_id
            FROM {events}
            WINDOW w AS (PARTITION BY case_key ORDER BY ts, event_id)
        ) pairs
        WHERE tgt_event_id IS NOT NULL
    """


def cases_sql(events: str, with_trace: bool = False) -> str:
    """One summary row per case of ``events``; ``variant_id`` is a hash of the activity sequence."""
    trace = ", trace" if with_trace else ""
    return f"""
        SELECT case_key, start_ts, end_ts, n_events, trace[1] AS first_activity_id,
               trace[len(trace)] AS last_activity_id, last.e AS last_event_id, last.r AS last_resource,
               last.s AS last_source_id, CAST(hash(trace) >> 1 AS BIGINT) AS variant_id, source_mask{trace}
        FROM (
            SELECT case_key, min(ts) AS start_ts, max(ts) AS end_ts, CAST(count(*) AS INTEGER) AS n_events,
                   bit_or({SOURCE_BIT_SQL}) AS source_mask,
                   array_agg(activity_id ORDER BY ts, event_id) AS trace,
                   arg_max({{'e': event_id, 'r': resource, 's': source_id}}, {{'t': ts, 'i': event_id}}) AS last
            FROM {events}
            GROUP BY case_key
        ) per_case
    """


def dfg_sql(edges: str, seconds: str, exact_cases: bool) -> str:
    """Frequency and performance per edge. ``seconds`` is the duration expression over ``edges``."""
    cases = "count(*) FILTER (WHERE first_in_case)" if exact_cases else "count(DISTINCT case_key)"
    return f"""
        SELECT src_id, tgt_id, frequency, cases, mean_seconds, q[1] AS median_seconds, q[2] AS p90_seconds,
               min_seconds, max_seconds, total_seconds
        FROM (
            SELECT src_id, tgt_id, count(*) AS frequency, {cases} AS cases, avg(d) AS mean_seconds,
                   quantile_cont(d, [0.5, 0.9]) AS q,  -- one sort per edge for both quantiles
                   min(d) AS min_seconds, max(d) AS max_seconds, sum(d) AS total_seconds
            FROM (SELECT src_id, tgt_id, case_key, first_in_case, {seconds} AS d FROM {edges}) x
            GROUP BY src_id, tgt_id
        ) agg
    """

#: the columns of ``an_case_rows`` (an_cases' columns the case table shows, plus the case id)
CASE_ROW_COLUMNS = "case_key, case_id, start_ts, end_ts, n_events, last_activity_id, last_resource, last_source_id, variant_id"


def case_rows_sql(summaries: str) -> str:
    """Rows of ``an_case_rows`` for the case summaries in ``summaries`` (columns of ``an_cases``)."""
    return f"""
        SELECT s.case_key, c.case_id, s.start_ts, s.end_ts, s.n_events, s.last_activity_id, s.last_resource,
               s.last_source_id, s.variant_id
        FROM {summaries} s JOIN cases c USING (case_key)
    """


#: duration of an edge in seconds, as every DFG query computes it (calendar time)
EDGE_SECONDS = "epoch(tgt_ts - src_ts)"
#: the same in whole microseconds, for sums that stay exact when rows are added and removed
EDGE_MICROS = "(epoch_us(tgt_ts) - epoch_us(src_ts))"
#: logarithmic buckets per doubling of a duration in :func:`bucket_sql` (about 1 % wide)
BUCKETS_PER_OCTAVE = 64


#: the bucket of zero (and of any negative duration): below every positive duration's bucket
ZERO_BUCKET = -32768


def bucket_sql(seconds: str) -> str:
    """The histogram bucket of a duration, monotone in ``d``: ``ZERO_BUCKET`` for zero, else
    ``floor(log2(d) * 64)``, at least ``ZERO_BUCKET + 1`` (a duration under a second has a negative
    logarithm, so zero cannot share the number -1 with them: until migration 0008 it did, and a
    median over zero and sub-second durations came out wrong)."""
    return (f"CASE WHEN {seconds} <= 0 THEN {ZERO_BUCKET} ELSE "
            f"greatest({ZERO_BUCKET + 1}, CAST(floor(log2({seconds}) * {BUCKETS_PER_OCTAVE}) AS INTEGER)) END")


def edge_delta_sql(edges: str, sign: int) -> str:
    """Rows of ``edges`` as signed contributions to the edge statistics (+1 added, -1 removed)."""
    return f"""
        SELECT src_id, tgt_id, {EDGE_SECONDS} AS d, {bucket_sql(EDGE_SECONDS)} AS bucket, {EDGE_MICROS} AS us,
               CAST(first_in_case AS INTEGER) AS first, {int(sign)} AS s
        FROM {edges}
    """


def edge_stats_sql(delta: str) -> str:
    """Frequency, cases and total microseconds per edge from signed ``delta`` rows (see :func:`edge_delta_sql`)."""
    return f"""
        SELECT src_id, tgt_id, sum(s) AS frequency, sum(s * first) AS cases, sum(CAST(s AS HUGEINT) * us) AS total_us
        FROM {delta} GROUP BY src_id, tgt_id
    """


def edge_hist_sql(delta: str) -> str:
    """Signed number of durations per edge and bucket."""
    return f"SELECT src_id, tgt_id, bucket, sum(s) AS n FROM {delta} GROUP BY src_id, tgt_id, bucket"


def stored_dfg_sql() -> str:
    """The unfiltered DFG (columns of :func:`dfg_sql`) read from the maintained ``an_edge_stats``."""
    return """
        SELECT src_id, tgt_id, frequency, cases, CAST(total_us AS DOUBLE) / frequency / 1e6 AS mean_seconds,
               median_seconds, p90_seconds, min_seconds, max_seconds, CAST(total_us AS DOUBLE) / 1e6 AS total_seconds
        FROM an_edge_stats
    """

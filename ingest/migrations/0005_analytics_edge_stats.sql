-- processlens analytics: second-level aggregates of an_edges, maintained incrementally with it
-- (see analytics/incremental.py). Like 0004's tables they are caches: a refresh rebuilds them
-- whenever an_state says they do not match an_edges.

-- One row per directly-follows edge (src_id, tgt_id): what the unfiltered DFG shows.
CREATE TABLE an_edge_stats (
    src_id         INTEGER NOT NULL,
    tgt_id         INTEGER NOT NULL,
    frequency      BIGINT  NOT NULL,
    cases          BIGINT  NOT NULL,
    total_us       HUGEINT NOT NULL,   -- sum of the durations in microseconds (exact under deltas)
    min_seconds    DOUBLE,
    median_seconds DOUBLE,             -- quantile_cont(0.5) of epoch(tgt_ts - src_ts), exactly
    p90_seconds    DOUBLE,
    max_seconds    DOUBLE
);

-- How many durations of each edge fall in each logarithmic bucket (see analytics.queries.bucket_sql):
-- locates the k-th smallest duration of an edge without sorting them all.
CREATE TABLE an_edge_hist (
    src_id INTEGER NOT NULL,
    tgt_id INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    n      BIGINT  NOT NULL
);

-- Every duration (with its multiplicity) of the buckets that hold a quantile of an edge (min, median,
-- p90, max), kept exact under deltas so a refresh reads an_edges only when a quantile moves to a new bucket.
CREATE TABLE an_edge_vals (
    src_id INTEGER NOT NULL,
    tgt_id INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    d      DOUBLE  NOT NULL,
    n      BIGINT  NOT NULL
);

-- The case table's rows: an_cases with the case id beside it (the join with `cases` on a million
-- cases costs more than the rest of the case table), maintained with an_cases.
CREATE TABLE an_case_rows (
    case_key         INTEGER   NOT NULL,
    case_id          VARCHAR   NOT NULL,
    start_ts         TIMESTAMP NOT NULL,
    end_ts           TIMESTAMP NOT NULL,
    n_events         INTEGER   NOT NULL,
    last_activity_id INTEGER   NOT NULL,
    last_resource    VARCHAR,
    last_source_id   INTEGER,
    variant_id       BIGINT    NOT NULL
);

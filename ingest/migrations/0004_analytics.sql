-- processlens analytics: aggregates maintained incrementally from `events` (see analytics/incremental.py).
-- They are caches: dropping their rows and an_state makes the next refresh rebuild them.

-- One row per directly-follows pair of consecutive events of a case (event order: ts, event_id).
CREATE TABLE an_edges (
    case_key        INTEGER   NOT NULL,
    src_event_id    BIGINT    NOT NULL,
    tgt_event_id    BIGINT    NOT NULL,
    src_id          INTEGER   NOT NULL,   -- activity_id of the earlier event
    tgt_id          INTEGER   NOT NULL,   -- activity_id of the later event
    src_ts          TIMESTAMP NOT NULL,
    tgt_ts          TIMESTAMP NOT NULL,
    src_resource    VARCHAR,
    tgt_resource    VARCHAR,
    src_source_id   INTEGER,
    tgt_source_id   INTEGER,
    first_in_case   BOOLEAN   NOT NULL    -- first occurrence of (src_id, tgt_id) in the case
);

-- One row per case: the summary the case table, variants and KPIs read.
CREATE TABLE an_cases (
    case_key          INTEGER   NOT NULL,
    start_ts          TIMESTAMP NOT NULL,
    end_ts            TIMESTAMP NOT NULL,
    n_events          INTEGER   NOT NULL,
    first_activity_id INTEGER   NOT NULL,
    last_activity_id  INTEGER   NOT NULL,
    last_event_id     BIGINT    NOT NULL,
    last_resource     VARCHAR,
    last_source_id    INTEGER,
    variant_id        BIGINT    NOT NULL   -- hash of the activity_id sequence (stable across rebuilds)
);

-- Activity sequences of the variants seen (rows of variants no case uses any more are harmless).
CREATE TABLE an_variants (
    variant_id BIGINT PRIMARY KEY,
    trace      INTEGER[] NOT NULL
);

-- Watermark of the aggregates: the largest event_id folded in and the event count at that moment.
CREATE TABLE an_state (
    key   VARCHAR PRIMARY KEY,
    value VARCHAR
);

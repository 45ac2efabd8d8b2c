-- processlens event store, schema version 1.
-- Timestamps are stored as TIMESTAMP (no zone) holding UTC wall-clock time.

CREATE TABLE store_meta (
    key   VARCHAR PRIMARY KEY,
    value VARCHAR
);

CREATE TABLE sources (
    source_id  INTEGER PRIMARY KEY,
    name       VARCHAR NOT NULL UNIQUE,
    kind       VARCHAR NOT NULL,          -- csv, parquet, xes, ocel, sqlite, postgres, http, folder, processlens
    timezone   VARCHAR NOT NULL DEFAULT 'UTC',
    config     JSON,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);

-- Dictionary of activity names: events store the integer id.
CREATE TABLE activities (
    activity_id INTEGER PRIMARY KEY,
    name        VARCHAR NOT NULL UNIQUE
);

-- One row per case; events refer to it by the integer case_key.
CREATE TABLE cases (
    case_key     INTEGER PRIMARY KEY,
    case_id      VARCHAR NOT NULL UNIQUE,
    attrs        JSON,
    first_run_id INTEGER
);

-- One row per source event (lifecycle transitions are kept as separate rows, see docs/store.md).
-- No primary key: dedupe is done by an anti-join on (source_id, record_id) at load time, which is
-- much cheaper than maintaining a unique index over tens of millions of rows.
CREATE TABLE events (
    event_id    BIGINT    NOT NULL,   -- global load order; tie-breaker for equal timestamps
    case_key    INTEGER   NOT NULL,
    activity_id INTEGER   NOT NULL,
    ts          TIMESTAMP NOT NULL,   -- UTC; the completion time of the event
    start_ts    TIMESTAMP,            -- UTC; when the source gives a start column on the same row
    lifecycle   VARCHAR,              -- lifecycle:transition as given (start, complete, ...), or NULL
    resource    VARCHAR,
    source_id   INTEGER   NOT NULL,
    record_id   VARCHAR   NOT NULL,   -- source record key, or a content hash + occurrence number
    position    BIGINT    NOT NULL,   -- row / record index in the source (0-based)
    run_id      INTEGER   NOT NULL,
    attrs       JSON                  -- the remaining event attributes, typed where JSON allows
);

CREATE TABLE ingest_runs (
    run_id             INTEGER PRIMARY KEY,
    job                VARCHAR NOT NULL,
    source_id          INTEGER,
    started_at         TIMESTAMP NOT NULL,
    ended_at           TIMESTAMP,
    status             VARCHAR NOT NULL,     -- running, succeeded, failed
    rows_read          BIGINT DEFAULT 0,
    rows_loaded        BIGINT DEFAULT 0,
    rows_rejected      BIGINT DEFAULT 0,
    duplicates_skipped BIGINT DEFAULT 0,
    error              VARCHAR,
    details            JSON
);

CREATE TABLE rejects (
    run_id      INTEGER,
    source_id   INTEGER,
    location    VARCHAR,      -- file path, table or URL
    line        BIGINT,       -- 1-based line in the file (header is line 1), when known
    record_key  VARCHAR,      -- source record key, when known
    field       VARCHAR,      -- the offending field, when known
    reason      VARCHAR NOT NULL,
    raw         JSON,
    rejected_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);

-- Incremental cursors (watermarks), committed in the same transaction as the data they cover.
CREATE TABLE cursors (
    job        VARCHAR PRIMARY KEY,
    value      VARCHAR,
    updated_at TIMESTAMP NOT NULL,
    run_id     INTEGER
);

-- Files picked up by drop-folder jobs (each file once, by content hash).
CREATE TABLE ingested_files (
    job         VARCHAR NOT NULL,
    path        VARCHAR NOT NULL,
    sha256      VARCHAR NOT NULL,
    size        BIGINT,
    run_id      INTEGER,
    ingested_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (job, sha256)
);

-- Correlation keys: a value seen in one system (a ticket id) that belongs to a case (an order).
CREATE TABLE correlation_keys (
    key_name  VARCHAR NOT NULL,
    key_value VARCHAR NOT NULL,
    case_id   VARCHAR NOT NULL,
    source_id INTEGER,
    PRIMARY KEY (key_name, key_value)
);

-- Records that could not be correlated to a case yet; retried on every run.
CREATE TABLE pending_events (
    source_id   INTEGER NOT NULL,
    record_id   VARCHAR NOT NULL,
    key_name    VARCHAR NOT NULL,
    key_value   VARCHAR NOT NULL,
    activity    VARCHAR NOT NULL,
    ts          TIMESTAMP NOT NULL,
    start_ts    TIMESTAMP,
    lifecycle   VARCHAR,
    resource    VARCHAR,
    position    BIGINT NOT NULL,
    run_id      INTEGER NOT NULL,
    attrs       JSON,
    PRIMARY KEY (source_id, record_id)
);

-- Object-centric tables (OCEL 2.0), kept as they are; flattening picks an object type as case.
CREATE TABLE ocel_events (
    source_id   INTEGER NOT NULL,
    event_id    VARCHAR NOT NULL,
    activity    VARCHAR NOT NULL,
    ts          TIMESTAMP NOT NULL,
    attrs       JSON,
    PRIMARY KEY (source_id, event_id)
);
CREATE TABLE ocel_objects (
    source_id   INTEGER NOT NULL,
    object_id   VARCHAR NOT NULL,
    object_type VARCHAR NOT NULL,
    attrs       JSON,
    PRIMARY KEY (source_id, object_id)
);
CREATE TABLE ocel_event_objects (
    source_id INTEGER NOT NULL,
    event_id  VARCHAR NOT NULL,
    object_id VARCHAR NOT NULL,
    qualifier VARCHAR
);
CREATE TABLE ocel_object_objects (
    source_id      INTEGER NOT NULL,
    from_object_id VARCHAR NOT NULL,
    to_object_id   VARCHAR NOT NULL,
    qualifier      VARCHAR
);

-- The view every consumer should read: names resolved, ordered by the canonical event order.
CREATE VIEW event_log AS
SELECT e.event_id, c.case_id, e.case_key, a.name AS activity, e.activity_id, e.ts, e.start_ts,
       e.lifecycle, e.resource, s.name AS source, e.source_id, e.record_id, e.position, e.run_id, e.attrs
FROM events e
JOIN cases c USING (case_key)
JOIN activities a USING (activity_id)
JOIN sources s USING (source_id);

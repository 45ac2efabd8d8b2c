-- Reference models and conformance results (models/ package), schema version 2.

-- Every distinct content (model file + annotations) of a named model is one version.
CREATE TABLE model_versions (
    model_id      INTEGER PRIMARY KEY,     -- global id, used as cache key
    name          VARCHAR NOT NULL,
    version       INTEGER NOT NULL,        -- 1, 2, ... per name
    fingerprint   VARCHAR NOT NULL,        -- sha256 of kind + model text + annotations text
    kind          VARCHAR NOT NULL,        -- bpmn | pnml | text
    path          VARCHAR,
    annotations_path VARCHAR,
    source_text   VARCHAR NOT NULL,
    annotations_text VARCHAR,
    registered_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
    UNIQUE (name, version),
    UNIQUE (name, fingerprint)
);

-- Conformance of one variant (sequence of activity ids) against one model version, computed once.
CREATE TABLE conformance_variants (
    model_id     INTEGER NOT NULL,
    method       VARCHAR NOT NULL,         -- token-replay | alignments | diagnosis
    variant_key  VARCHAR NOT NULL,         -- md5 of the activity-id sequence
    status       VARCHAR NOT NULL,         -- computed | not computed (time limit)
    result       JSON,                     -- fitness, token counts or costs, deviations
    seconds      DOUBLE,
    computed_at  TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (model_id, method, variant_key)
);

-- One row per check run: which model version and data version the figures belong to.
CREATE TABLE conformance_runs (
    run_id        INTEGER PRIMARY KEY,
    model_id      INTEGER NOT NULL,
    method        VARCHAR NOT NULL,
    data_version  BIGINT,
    started_at    TIMESTAMP NOT NULL,
    seconds       DOUBLE,
    variants      INTEGER,
    variants_computed INTEGER,             -- new this run (the rest came from the cache)
    variants_not_computed INTEGER,
    cases         INTEGER,
    fitting_cases INTEGER,
    log_fitness   DOUBLE,
    precision     DOUBLE,
    summary       JSON
);

-- processlens ingest: `cases.case_id` loses its UNIQUE constraint (and with it an ART index).
-- Maintaining that index was the costliest part of creating cases on a first load (0.8 s of 1.9 s
-- for 1.1 million cases), and nothing reads through it: joins are hash joins and a lookup of one
-- case scans the column. Case ids stay unique because the store has one writer (the loader) and
-- it creates a case only for an id not stored yet (an anti-join on `cases`, in the run's
-- transaction); tests/test_loader.py and tests/test_store.py check it across batches, runs and sources.
-- DuckDB cannot drop a constraint in place: the table is rebuilt. (The view event_log reads it by
-- name, so it needs no change.)
CREATE TEMP TABLE _cases_0009 AS SELECT * FROM cases;
DROP TABLE cases;
CREATE TABLE cases (
    case_key     INTEGER PRIMARY KEY,
    case_id      VARCHAR NOT NULL,
    attrs        JSON,
    first_run_id INTEGER
);
INSERT INTO cases SELECT case_key, case_id, attrs, first_run_id FROM _cases_0009 ORDER BY case_key;
DROP TABLE _cases_0009;

-- Coordinator: the outbox of corrective actions, delivery attempts, leases, rule state and audit.
-- Timestamps are UTC wall-clock time unless named *decided_at* (the clock the rule was evaluated
-- with, which equals wall-clock time except for replays and the demo's fixed "now").

CREATE SEQUENCE action_id_seq START 1;

-- One row per action: written in the same transaction as the decision that caused it.
CREATE TABLE actions (
    action_id        BIGINT PRIMARY KEY DEFAULT nextval('action_id_seq'),
    idempotency_key  VARCHAR NOT NULL UNIQUE,  -- sent as Idempotency-Key header on every attempt
    origin           VARCHAR NOT NULL,         -- rule | manual
    rule             VARCHAR,                  -- rule name (origin = rule)
    actor            VARCHAR NOT NULL,         -- "rule:NAME" or the operator's user name
    kind             VARCHAR NOT NULL,         -- stuck | unhandled_exception | deviation | event | manual
    action_type      VARCHAR NOT NULL,         -- escalate | reassign | retry | email | chat | ticket | webhook
    channel          VARCHAR NOT NULL,         -- http | smtp
    case_id          VARCHAR NOT NULL,
    step             VARCHAR,                  -- the step the case waits at / exception type
    reason           VARCHAR,                  -- why, in words
    target           JSON NOT NULL,            -- resolved target (url or mail recipients); no secrets
    payload          VARCHAR NOT NULL,         -- exact body sent (JSON text, or the mail text as JSON)
    payload_sha256   VARCHAR NOT NULL,
    status           VARCHAR NOT NULL,         -- awaiting_approval | pending | delivered | dead | refused | rejected
    attempts         INTEGER NOT NULL DEFAULT 0,
    dead_after       INTEGER NOT NULL,         -- dead-letter when attempts reaches this (retry raises it)
    next_attempt_at  TIMESTAMP NOT NULL,
    lease_owner      VARCHAR,                  -- worker holding the action while it is being sent
    lease_expires_at TIMESTAMP,
    decided_at       TIMESTAMP NOT NULL,       -- evaluation clock of the decision
    created_at       TIMESTAMP NOT NULL,
    delivered_at     TIMESTAMP,
    last_error       VARCHAR,
    last_status_code INTEGER,
    approved_by      VARCHAR,
    approved_at      TIMESTAMP,
    details          JSON                      -- waited_seconds, sla_seconds, owner, contact, ...
);
CREATE INDEX actions_case_idx ON actions (case_id);

-- Every delivery attempt with its result.
CREATE TABLE action_attempts (
    action_id    BIGINT NOT NULL,
    attempt      INTEGER NOT NULL,
    worker       VARCHAR NOT NULL,
    started_at   TIMESTAMP NOT NULL,
    ended_at     TIMESTAMP NOT NULL,
    outcome      VARCHAR NOT NULL,             -- delivered | failed | refused
    status_code  INTEGER,
    error        VARCHAR,
    duration_ms  DOUBLE
);

-- Dispatcher processes and their heartbeats; a worker whose lease expired is considered dead and
-- the actions it held are claimed by others.
CREATE TABLE coordinator_leases (
    worker           VARCHAR PRIMARY KEY,
    host             VARCHAR,
    pid              INTEGER,
    started_at       TIMESTAMP NOT NULL,
    heartbeat_at     TIMESTAMP NOT NULL,
    expires_at       TIMESTAMP NOT NULL,
    stopped_at       TIMESTAMP
);

-- Runtime state of each rule: enabled, consecutive failures, why it was disabled, watermarks.
CREATE TABLE rule_state (
    rule                 VARCHAR PRIMARY KEY,
    enabled              BOOLEAN NOT NULL DEFAULT TRUE,
    disabled_reason      VARCHAR,
    disabled_at          TIMESTAMP,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    last_event_id        BIGINT,               -- event rules: events up to here were seen
    last_run_at          TIMESTAMP,
    last_matched         INTEGER,
    last_created         INTEGER,
    updated_at           TIMESTAMP
);

-- Audit trail: who or which rule did what, when, why, to which case, with the payload's hash.
CREATE TABLE action_audit (
    audit_at       TIMESTAMP NOT NULL,
    actor          VARCHAR NOT NULL,
    event          VARCHAR NOT NULL,            -- created | refused | approved | rejected | attempt | delivered
                                                -- | dead_lettered | retried | rule_disabled | rule_enabled
    action_id      BIGINT,
    rule           VARCHAR,
    case_id        VARCHAR,
    payload_sha256 VARCHAR,
    detail         VARCHAR
);
CREATE INDEX action_audit_action_idx ON action_audit (action_id);

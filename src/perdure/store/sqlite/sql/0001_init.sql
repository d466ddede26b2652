-- perdure schema for SQLite, version 1. Times are REAL seconds since the epoch.

CREATE TABLE perdure_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

INSERT INTO perdure_meta (key, value) VALUES ('registry_version', '0');

CREATE TABLE functions (
    id         TEXT PRIMARY KEY,
    app        TEXT NOT NULL,
    triggers   TEXT NOT NULL,
    config     TEXT NOT NULL,
    updated_at REAL NOT NULL
) WITHOUT ROWID;

-- A run is also its queue item: available_at is when it may be claimed (its lease expiry while
-- it is running; NULL when terminal or waiting without a deadline).
CREATE TABLE runs (
    id              TEXT PRIMARY KEY,
    function_id     TEXT NOT NULL,
    status          TEXT NOT NULL,
    input           TEXT NOT NULL,
    output          TEXT,
    error           TEXT,
    event_id        TEXT,
    idempotency_key TEXT,
    parent_run_id   TEXT,
    parent_step     TEXT,
    priority        INTEGER NOT NULL DEFAULT 0,
    attempt         INTEGER NOT NULL DEFAULT 0,
    crashes         INTEGER NOT NULL DEFAULT 0,
    available_at    REAL,
    lease_token     INTEGER NOT NULL DEFAULT 0,
    lease_owner     TEXT,
    created_at      REAL NOT NULL,
    started_at      REAL,
    ended_at        REAL
);

CREATE INDEX runs_due ON runs (available_at) WHERE available_at IS NOT NULL;
CREATE UNIQUE INDEX runs_idempotency ON runs (function_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX runs_by_function ON runs (function_id, id);
CREATE INDEX runs_by_status ON runs (status, id);
CREATE INDEX runs_by_parent ON runs (parent_run_id) WHERE parent_run_id IS NOT NULL;
CREATE INDEX runs_ended ON runs (ended_at) WHERE ended_at IS NOT NULL;

CREATE TABLE steps (
    run_id     TEXT NOT NULL,
    key        TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    status     TEXT NOT NULL,
    output     TEXT,
    error      TEXT,
    attempts   INTEGER NOT NULL,
    wake_at    REAL,
    started_at REAL,
    ended_at   REAL,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;

CREATE TABLE waits (
    run_id      TEXT NOT NULL,
    step_key    TEXT NOT NULL,
    event_name  TEXT NOT NULL,
    match_path  TEXT,
    match_value TEXT,
    expression  TEXT,
    expires_at  REAL,
    created_at  REAL NOT NULL,
    PRIMARY KEY (run_id, step_key)
) WITHOUT ROWID;

CREATE INDEX waits_by_event ON waits (event_name);

CREATE TABLE events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL,
    name        TEXT NOT NULL,
    body        TEXT NOT NULL,
    received_at REAL NOT NULL
);

CREATE INDEX events_by_id ON events (id);
CREATE INDEX events_by_name ON events (name, seq);

-- Event ids seen within the dedupe window.
CREATE TABLE event_ids (
    id         TEXT PRIMARY KEY,
    expires_at REAL NOT NULL
) WITHOUT ROWID;

CREATE TABLE cron_ticks (
    function_id TEXT NOT NULL,
    trigger     TEXT NOT NULL,
    last_tick   REAL NOT NULL,
    PRIMARY KEY (function_id, trigger)
) WITHOUT ROWID;

CREATE INDEX runs_by_event ON runs (event_id) WHERE event_id IS NOT NULL;

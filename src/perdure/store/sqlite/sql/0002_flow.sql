-- perdure schema for SQLite, version 2: flow control (docs/flow-control.md).

-- The keys a run's limits are counted under (engine/flow/keys.py), NULL when not limited.
ALTER TABLE runs ADD COLUMN concurrency_key TEXT;
ALTER TABLE runs ADD COLUMN concurrency_key2 TEXT;
ALTER TABLE runs ADD COLUMN throttle_key TEXT;
ALTER TABLE runs ADD COLUMN singleton_key TEXT;
-- Debounce and batch: the key of the run that still accumulates events (NULL once closed).
ALTER TABLE runs ADD COLUMN gate_key TEXT;
-- How many events a batch run holds.
ALTER TABLE runs ADD COLUMN batch_size INTEGER;
-- Timeouts: the run is cancelled if it has not started by start_by / ended by finish_by.
ALTER TABLE runs ADD COLUMN start_by REAL;
ALTER TABLE runs ADD COLUMN finish_by REAL;
-- Why flow control delayed, skipped or cancelled the run (JSON), shown by the API and CLI.
ALTER TABLE runs ADD COLUMN reason TEXT;

-- Executing runs per concurrency key: slots are derived from live leases, never counted.
CREATE INDEX runs_running_ck1 ON runs (concurrency_key)
    WHERE status = 'running' AND concurrency_key IS NOT NULL;
CREATE INDEX runs_running_ck2 ON runs (concurrency_key2)
    WHERE status = 'running' AND concurrency_key2 IS NOT NULL;

-- GCRA state (throttle, rate limit) and other per-key flow-control state.
CREATE TABLE flow_buckets (
    key        TEXT PRIMARY KEY,
    tat        REAL NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;

-- perdure schema for PostgreSQL, version 2: flow control (docs/flow-control.md).

-- The keys a run's limits are counted under (engine/flow/keys.py), NULL when not limited.
ALTER TABLE runs ADD COLUMN concurrency_key text COLLATE "C";
ALTER TABLE runs ADD COLUMN concurrency_key2 text COLLATE "C";
ALTER TABLE runs ADD COLUMN throttle_key text COLLATE "C";
ALTER TABLE runs ADD COLUMN singleton_key text COLLATE "C";
-- Debounce and batch: the key of the run that still accumulates events (NULL once closed).
ALTER TABLE runs ADD COLUMN gate_key text COLLATE "C";
-- How many events a batch run holds.
ALTER TABLE runs ADD COLUMN batch_size integer;
-- Timeouts: the run is cancelled if it has not started by start_by / ended by finish_by.
ALTER TABLE runs ADD COLUMN start_by double precision;
ALTER TABLE runs ADD COLUMN finish_by double precision;
-- Why flow control delayed, skipped or cancelled the run (JSON), shown by the API and CLI.
ALTER TABLE runs ADD COLUMN reason text;

-- Executing runs per concurrency key: slots are derived from live leases, never counted.
CREATE INDEX runs_running_ck1 ON runs (concurrency_key)
    WHERE status = 'running' AND concurrency_key IS NOT NULL;
CREATE INDEX runs_running_ck2 ON runs (concurrency_key2)
    WHERE status = 'running' AND concurrency_key2 IS NOT NULL;

-- GCRA state (throttle, rate limit) and other per-key flow-control state.
CREATE TABLE flow_buckets (
    key        text COLLATE "C" PRIMARY KEY,
    tat        double precision NOT NULL,
    expires_at double precision NOT NULL
);

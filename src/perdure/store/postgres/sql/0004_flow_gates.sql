-- perdure schema for PostgreSQL: creation-time flow control (docs/flow-control.md, "Gates").

-- Rate limit (engine/flow/window.py): per key, a ring of the last `limit` admission times,
-- one row per slot, and a head row (ring size, next slot to overwrite, latest admission).
CREATE TABLE flow_rate_heads (
    key        text COLLATE "C" PRIMARY KEY,
    size       integer NOT NULL,
    head       integer NOT NULL,
    last       double precision NOT NULL,
    expires_at double precision NOT NULL
);
CREATE INDEX flow_rate_heads_expiry ON flow_rate_heads (expires_at);
CREATE TABLE flow_rate_slots (
    key  text COLLATE "C" NOT NULL,
    slot integer NOT NULL,
    at   double precision NOT NULL,
    PRIMARY KEY (key, slot)
);

-- Idempotency keys used within the last 24 hours, with the run each started.
CREATE TABLE flow_idempotency (
    key        text COLLATE "C" PRIMARY KEY,
    run_id     text COLLATE "C" NOT NULL,
    expires_at double precision NOT NULL
);
CREATE INDEX flow_idempotency_expiry ON flow_idempotency (expires_at);

-- Singleton: the active runs of a key.
CREATE INDEX runs_singleton_active ON runs (function_id, singleton_key)
    WHERE singleton_key IS NOT NULL
    AND status NOT IN ('completed', 'failed', 'cancelled', 'skipped');
-- Debounce and batch: at most one open run per function and key.
CREATE UNIQUE INDEX runs_gate_open ON runs (function_id, gate_key) WHERE gate_key IS NOT NULL;

-- perdure schema for SQLite: operations (migration 0008).
-- Workers registry: every worker upserts its row on its heartbeat cadence; a row whose
-- last_heartbeat is older than its stale_after is a worker that died (not live).
CREATE TABLE workers (
    id             TEXT PRIMARY KEY,
    host           TEXT NOT NULL,
    pid            INTEGER NOT NULL,
    app            TEXT NOT NULL,
    functions      TEXT NOT NULL,
    slots          INTEGER NOT NULL,
    slots_used     INTEGER NOT NULL,
    stale_after    REAL NOT NULL,
    started_at     REAL NOT NULL,
    last_heartbeat REAL NOT NULL,
    stopped_at     REAL
);
CREATE INDEX workers_heartbeat ON workers (last_heartbeat);
-- Paused functions, apart from the functions rows a sync rewrites: claims skip their runs.
CREATE TABLE function_pauses (
    function_id TEXT PRIMARY KEY,
    paused_at   REAL NOT NULL
);

-- perdure schema for PostgreSQL: operations (migration 0008).
-- Workers registry: every worker upserts its row on its heartbeat cadence; a row whose
-- last_heartbeat is older than its stale_after is a worker that died (not live).
CREATE TABLE workers (
    id             text COLLATE "C" PRIMARY KEY,
    host           text NOT NULL,
    pid            integer NOT NULL,
    app            text NOT NULL,
    functions      text NOT NULL,
    slots          integer NOT NULL,
    slots_used     integer NOT NULL,
    stale_after    double precision NOT NULL,
    started_at     double precision NOT NULL,
    last_heartbeat double precision NOT NULL,
    stopped_at     double precision
);
CREATE INDEX workers_heartbeat ON workers (last_heartbeat);
-- Paused functions, apart from the functions rows a sync rewrites: claims skip their runs.
CREATE TABLE function_pauses (
    function_id text COLLATE "C" PRIMARY KEY,
    paused_at   double precision NOT NULL
);

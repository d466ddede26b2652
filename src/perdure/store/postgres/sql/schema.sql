-- perdure schema for PostgreSQL: the complete current schema, applied to an empty database.
-- Keep it equal to the result of the numbered migrations (tests/store/test_postgres_schema.py
-- checks); a new migration NNNN_*.sql is also folded in here.
--
-- Times are double precision seconds since the epoch (UTC), read from the database clock
-- (perdure_now). Ids and keys use the "C" collation: byte order, like SQLite, whatever the
-- database's locale, so that ULIDs sort by creation time and cursors (id < $1) are stable.

CREATE TABLE perdure_meta (
    key   text COLLATE "C" PRIMARY KEY,
    value text NOT NULL
);

INSERT INTO perdure_meta (key, value) VALUES ('registry_version', '0');

-- The store's clock: the database's, unless a test passes its manual clock's time.
CREATE FUNCTION perdure_now(manual double precision) RETURNS double precision
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT coalesce(manual, extract(epoch FROM now())::double precision) $$;

CREATE TABLE functions (
    id         text COLLATE "C" PRIMARY KEY,
    app        text NOT NULL,
    triggers   text NOT NULL,
    config     text NOT NULL,
    updated_at double precision NOT NULL
);

-- A run is also its queue item: available_at is when it may be claimed (its lease expiry while
-- it is running; NULL when terminal or waiting without a deadline).
CREATE TABLE runs (
    id              text COLLATE "C" PRIMARY KEY,
    function_id     text COLLATE "C" NOT NULL,
    status          text NOT NULL,
    input           text NOT NULL,
    output          text,
    error           text,
    event_id        text COLLATE "C",
    idempotency_key text COLLATE "C",
    parent_run_id   text COLLATE "C",
    parent_step     text COLLATE "C",
    priority        integer NOT NULL DEFAULT 0,
    attempt         integer NOT NULL DEFAULT 0,
    crashes         integer NOT NULL DEFAULT 0,
    available_at    double precision,
    lease_token     bigint NOT NULL DEFAULT 0,
    lease_owner     text,
    created_at      double precision NOT NULL,
    started_at      double precision,
    ended_at        double precision,
    concurrency_key  text COLLATE "C",
    concurrency_key2 text COLLATE "C",
    throttle_key     text COLLATE "C",
    singleton_key    text COLLATE "C",
    gate_key         text COLLATE "C",
    batch_size       integer,
    start_by         double precision,
    finish_by        double precision,
    reason           text,
    rerun_of         text COLLATE "C",
    replay_of        text COLLATE "C",
    replay_from_step text COLLATE "C",
    trace            text
);

CREATE INDEX runs_due ON runs (available_at, id) WHERE available_at IS NOT NULL;
CREATE UNIQUE INDEX runs_idempotency ON runs (function_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX runs_by_function ON runs (function_id, id);
CREATE INDEX runs_by_status ON runs (status, id);
CREATE INDEX runs_by_parent ON runs (parent_run_id) WHERE parent_run_id IS NOT NULL;
CREATE INDEX runs_ended ON runs (ended_at) WHERE ended_at IS NOT NULL;
CREATE INDEX runs_by_event ON runs (event_id) WHERE event_id IS NOT NULL;

CREATE TABLE steps (
    run_id     text COLLATE "C" NOT NULL,
    key        text COLLATE "C" NOT NULL,
    seq        integer NOT NULL,
    kind       text NOT NULL,
    status     text NOT NULL,
    output     text,
    error      text,
    attempts   integer NOT NULL,
    wake_at    double precision,
    started_at double precision,
    ended_at   double precision,
    name       text,
    input      text,
    PRIMARY KEY (run_id, key)
);

CREATE TABLE waits (
    run_id      text COLLATE "C" NOT NULL,
    step_key    text COLLATE "C" NOT NULL,
    event_name  text COLLATE "C" NOT NULL,
    match_path  text,
    match_value text,
    expression  text,
    expires_at  double precision,
    created_at  double precision NOT NULL,
    PRIMARY KEY (run_id, step_key)
);

CREATE INDEX waits_by_event ON waits (event_name);

CREATE TABLE events (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          text COLLATE "C" NOT NULL,
    name        text COLLATE "C" NOT NULL,
    body        text NOT NULL,
    received_at double precision NOT NULL
);

CREATE INDEX events_by_id ON events (id);
CREATE INDEX events_by_name ON events (name, seq);
CREATE INDEX events_received ON events (received_at);

-- Event ids seen within the dedupe window.
CREATE TABLE event_ids (
    id         text COLLATE "C" PRIMARY KEY,
    expires_at double precision NOT NULL
);

CREATE INDEX event_ids_expiry ON event_ids (expires_at);

CREATE TABLE cron_ticks (
    function_id text COLLATE "C" NOT NULL,
    trigger     text NOT NULL,
    last_tick   double precision NOT NULL,
    last_run_id text COLLATE "C",
    PRIMARY KEY (function_id, trigger)
);

-- Flow control (migration 0002, docs/flow-control.md). Executing runs per concurrency key:
-- slots are derived from live leases, never counted.
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

-- cancel_on and timeouts (migration 0005, docs/flow-control.md): the runs of a function that
-- have not ended, by creation time; runs not started, by start deadline; runs not ended, by
-- finish deadline.
CREATE INDEX runs_active_by_function ON runs (function_id, created_at)
    WHERE status IN ('queued', 'running', 'sleeping', 'waiting');
CREATE INDEX runs_start_by ON runs (start_by)
    WHERE start_by IS NOT NULL AND started_at IS NULL AND status = 'queued';
CREATE INDEX runs_finish_by ON runs (finish_by)
    WHERE finish_by IS NOT NULL AND status IN ('queued', 'running', 'sleeping', 'waiting');

-- Creation-time flow control (migration 0004, docs/flow-control.md "Gates").
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

-- Schedules created at run time (App.schedules; migration 0003). last_tick is the cursor:
-- every tick at or before it is handled. next_at is the first tick after the cursor; revision
-- changes whenever the schedule does, so a scheduler firing from an older read is refused.
CREATE TABLE schedules (
    id              text COLLATE "C" PRIMARY KEY,
    function_id     text COLLATE "C" NOT NULL,
    cron            text NOT NULL,
    tz              text NOT NULL,
    data            text NOT NULL,
    overlap         text NOT NULL,
    catchup         text NOT NULL,
    catchup_window  double precision NOT NULL,
    paused          boolean NOT NULL DEFAULT false,
    last_tick       double precision NOT NULL,
    next_at         double precision NOT NULL,
    last_run_id     text COLLATE "C",
    runs            bigint NOT NULL DEFAULT 0,
    skipped_overlap bigint NOT NULL DEFAULT 0,
    missed          bigint NOT NULL DEFAULT 0,
    revision        text COLLATE "C" NOT NULL,
    created_at      double precision NOT NULL,
    updated_at      double precision NOT NULL
);

CREATE INDEX schedules_due ON schedules (next_at) WHERE NOT paused;
CREATE INDEX schedules_by_function ON schedules (function_id, id);

-- Operations (migration 0008). Workers registry: every worker upserts its row on its
-- heartbeat cadence; a row whose last_heartbeat is older than its stale_after is a worker that died (not live).
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

-- API keys, dashboard sessions and the audit trail (migration 0009).
CREATE TABLE api_keys (
    id           text COLLATE "C" PRIMARY KEY,
    name         text NOT NULL,
    scopes       text NOT NULL,
    token_hash   text COLLATE "C" NOT NULL UNIQUE,
    prefix       text NOT NULL,
    created_by   text,
    created_at   double precision NOT NULL,
    expires_at   double precision,
    last_used_at double precision,
    revoked_at   double precision
);

CREATE TABLE sessions (
    token_hash text COLLATE "C" PRIMARY KEY,
    key_id     text COLLATE "C" NOT NULL,
    csrf       text NOT NULL,
    created_at double precision NOT NULL,
    expires_at double precision NOT NULL
);

CREATE INDEX sessions_by_key ON sessions (key_id);

CREATE TABLE audit (
    seq    bigserial PRIMARY KEY,
    at     double precision NOT NULL,
    actor  text NOT NULL,
    action text NOT NULL,
    run_id text COLLATE "C",
    target text,
    detail text
);

CREATE INDEX audit_by_run ON audit (run_id, seq) WHERE run_id IS NOT NULL;

-- The sync state of the apps on the Inngest SDKs (perdure.store.app_syncs).
CREATE TABLE app_syncs (
    kind           text COLLATE "C" NOT NULL CHECK (kind IN ('app', 'url')),
    name           text COLLATE "C" NOT NULL,
    url            text NOT NULL DEFAULT '',
    sdk            text,
    framework      text,
    synced_at      double precision,
    attempt_at     double precision NOT NULL,
    attempt_ok     boolean NOT NULL,
    attempt_error  text,
    attempt_source text NOT NULL,
    PRIMARY KEY (kind, name)
);

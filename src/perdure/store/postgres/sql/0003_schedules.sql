-- perdure schema for PostgreSQL, migration 0003: schedules created at run time
-- (App.schedules), and the previous run of each cron trigger (for its overlap policy).
-- See docs/schedules.md.

-- One row per schedule. last_tick is its cursor: every tick at or before it is handled.
-- next_at is the first tick after the cursor (what schedulers wait for); revision changes
-- whenever the schedule does (create, pause, resume), so a scheduler firing from an older
-- read is refused.
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

ALTER TABLE cron_ticks ADD COLUMN last_run_id text COLLATE "C";

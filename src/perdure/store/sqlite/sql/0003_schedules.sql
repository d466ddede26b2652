-- perdure schema for SQLite, migration 0003: schedules created at run time (App.schedules),
-- and the previous run of each cron trigger (for its overlap policy). See docs/schedules.md.

-- One row per schedule. last_tick is its cursor: every tick at or before it is handled.
-- next_at is the first tick after the cursor (what schedulers wait for); revision changes
-- whenever the schedule does (create, pause, resume), so a scheduler firing from an older
-- read is refused.
CREATE TABLE schedules (
    id              TEXT PRIMARY KEY,
    function_id     TEXT NOT NULL,
    cron            TEXT NOT NULL,
    tz              TEXT NOT NULL,
    data            TEXT NOT NULL,
    overlap         TEXT NOT NULL,
    catchup         TEXT NOT NULL,
    catchup_window  REAL NOT NULL,
    paused          INTEGER NOT NULL DEFAULT 0,
    last_tick       REAL NOT NULL,
    next_at         REAL NOT NULL,
    last_run_id     TEXT,
    runs            INTEGER NOT NULL DEFAULT 0,
    skipped_overlap INTEGER NOT NULL DEFAULT 0,
    missed          INTEGER NOT NULL DEFAULT 0,
    revision        TEXT NOT NULL,
    created_at      REAL NOT NULL,
    updated_at      REAL NOT NULL
) WITHOUT ROWID;

CREATE INDEX schedules_due ON schedules (next_at) WHERE paused = 0;
CREATE INDEX schedules_by_function ON schedules (function_id, id);

ALTER TABLE cron_ticks ADD COLUMN last_run_id TEXT;

-- perdure schema for SQLite: the sync state of the apps on the Inngest SDKs (see
-- perdure.store.app_syncs): per app (kind 'app', name its id) its last registration and last
-- attempt; per app URL the servers PUT (kind 'url', name the URL) its last outcome.
CREATE TABLE app_syncs (
    kind           TEXT NOT NULL CHECK (kind IN ('app', 'url')),
    name           TEXT NOT NULL,
    url            TEXT NOT NULL DEFAULT '',
    sdk            TEXT,
    framework      TEXT,
    synced_at      REAL,
    attempt_at     REAL NOT NULL,
    attempt_ok     INTEGER NOT NULL,
    attempt_error  TEXT,
    attempt_source TEXT NOT NULL,
    PRIMARY KEY (kind, name)
) WITHOUT ROWID;

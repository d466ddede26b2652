-- perdure schema for PostgreSQL: the sync state of the apps on the Inngest SDKs (see
-- perdure.store.app_syncs): per app (kind 'app', name its id) its last registration and last
-- attempt; per app URL the servers PUT (kind 'url', name the URL) its last outcome.
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

-- perdure schema for SQLite: API keys (stored hashed), dashboard sessions and the audit trail
-- of an environment (see perdure.keys and perdure.store.access).
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    scopes       TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    prefix       TEXT NOT NULL,
    created_by   TEXT,
    created_at   REAL NOT NULL,
    expires_at   REAL,
    last_used_at REAL,
    revoked_at   REAL
) WITHOUT ROWID;

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    key_id     TEXT NOT NULL,
    csrf       TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;

CREATE INDEX sessions_by_key ON sessions (key_id);

CREATE TABLE audit (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    at     REAL NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    run_id TEXT,
    target TEXT,
    detail TEXT
);

CREATE INDEX audit_by_run ON audit (run_id, seq) WHERE run_id IS NOT NULL;

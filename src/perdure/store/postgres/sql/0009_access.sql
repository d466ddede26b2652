-- perdure schema for PostgreSQL: API keys (stored hashed), dashboard sessions and the audit
-- trail of an environment (see perdure.keys and perdure.store.access).
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

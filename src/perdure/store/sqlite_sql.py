"""Every SQL statement of the SQLite backend (except the schema, in ``sql/sqlite/``)."""

from __future__ import annotations

from typing import Final, LiteralString

PRAGMAS: Final[tuple[LiteralString, ...]] = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA foreign_keys=OFF",
    "PRAGMA temp_store=MEMORY",
    "PRAGMA cache_size=-32000",
)

RUN_COLUMNS: Final = (
    "id, function_id, status, input, output, error, attempt, event_id, idempotency_key, "
    "parent_run_id, parent_step, created_at, started_at, ended_at, available_at, lease_owner"
)
STEP_COLUMNS: Final = (
    "key, seq, kind, status, output, error, attempts, wake_at, started_at, ended_at"
)

SCHEMA_VERSION: Final = "SELECT value FROM perdure_meta WHERE key = 'schema_version'"
SET_SCHEMA_VERSION: Final = (
    "INSERT INTO perdure_meta (key, value) VALUES ('schema_version', ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)
HAS_META: Final = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'perdure_meta'"

REGISTRY_VERSION: Final = "SELECT value FROM perdure_meta WHERE key = 'registry_version'"
BUMP_REGISTRY: Final = (
    "UPDATE perdure_meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'registry_version'"
)
UPSERT_FUNCTION: Final = (
    "INSERT INTO functions (id, app, triggers, config, updated_at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET app = excluded.app, triggers = excluded.triggers, "
    "config = excluded.config, updated_at = excluded.updated_at"
)
SELECT_FUNCTIONS: Final = "SELECT id, app, triggers, config FROM functions ORDER BY id"

INSERT_RUN: Final = (
    "INSERT INTO runs (id, function_id, status, input, event_id, idempotency_key, "
    "parent_run_id, parent_step, priority, available_at, created_at) "
    "VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_LEASED_RUN: Final = (
    "INSERT INTO runs (id, function_id, status, input, event_id, idempotency_key, "
    "parent_run_id, parent_step, priority, available_at, created_at, lease_owner, lease_token, "
    "started_at) VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?) "
    "ON CONFLICT (function_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
)
INSERT_RUN_IDEMPOTENT: Final = (
    INSERT_RUN + " ON CONFLICT (function_id, idempotency_key) "
    "WHERE idempotency_key IS NOT NULL DO NOTHING"
)
RUN_BY_KEY: Final = "SELECT id FROM runs WHERE function_id = ? AND idempotency_key = ?"

SELECT_DUE: Final = (
    "SELECT id, status, started_at FROM runs "
    "WHERE available_at <= ? AND function_id IN ({fids}) "
    "ORDER BY available_at LIMIT ?"
)
CLAIM_RUN: Final = (
    "UPDATE runs SET status = 'running', lease_token = lease_token + 1, lease_owner = ?, "
    "available_at = ?, started_at = coalesce(started_at, ?), crashes = crashes + ? "
    "WHERE id = ? RETURNING function_id, lease_token, input, attempt, crashes"
)
NEXT_DUE: Final = (
    "SELECT min(available_at) FROM runs WHERE available_at IS NOT NULL AND function_id IN ({fids})"
)
STEPS_OF_RUNS: Final = "SELECT run_id, " + STEP_COLUMNS + " FROM steps WHERE run_id IN ({ids})"
STEPS_OF_RUN: Final = "SELECT " + STEP_COLUMNS + " FROM steps WHERE run_id = ? ORDER BY seq"
STEP_OF_RUN: Final = "SELECT " + STEP_COLUMNS + " FROM steps WHERE run_id = ? AND key = ?"

FENCE: Final = "SELECT id, lease_token FROM runs WHERE status = 'running' AND id IN ({ids})"
UPSERT_STEP: Final = (
    "INSERT INTO steps (run_id, key, seq, kind, status, output, error, attempts, wake_at, "
    "started_at, ended_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (run_id, key) DO UPDATE SET status = excluded.status, "
    "output = excluded.output, error = excluded.error, attempts = excluded.attempts, "
    "wake_at = excluded.wake_at, ended_at = excluded.ended_at"
)
UPSERT_WAIT: Final = (
    "INSERT OR REPLACE INTO waits (run_id, step_key, event_name, match_path, match_value, "
    "expression, expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
COMPLETE_RUN: Final = (
    "UPDATE runs SET status = ?, output = ?, error = ?, available_at = NULL, "
    "lease_owner = NULL, ended_at = ? WHERE id = ? RETURNING parent_run_id, parent_step"
)
RETRY_RUN: Final = (
    "UPDATE runs SET status = 'queued', error = ?, attempt = attempt + 1, available_at = ?, "
    "lease_owner = NULL WHERE id = ?"
)
SUSPEND_RUN: Final = "UPDATE runs SET status = ?, available_at = ?, lease_owner = NULL WHERE id = ?"
RESOLVED_WATCHED: Final = (
    "SELECT 1 FROM steps WHERE run_id = ? AND key IN ({keys}) "
    "AND status IN ('completed', 'failed') LIMIT 1"
)
DELETE_WAITS_OF_RUN: Final = "DELETE FROM waits WHERE run_id = ?"
RESOLVE_STEP: Final = (
    "UPDATE steps SET status = ?, output = ?, error = ?, ended_at = ? "
    "WHERE run_id = ? AND key = ? AND status IN ('waiting', 'invoking')"
)
DELETE_WAIT: Final = "DELETE FROM waits WHERE run_id = ? AND step_key = ?"
WAKE_RUN: Final = (
    "UPDATE runs SET status = 'queued', available_at = min(coalesce(available_at, ?), ?) "
    "WHERE id = ? AND status IN ('waiting', 'sleeping', 'queued')"
)
HEARTBEAT: Final = (
    "UPDATE runs SET available_at = ? WHERE id = ? AND lease_token = ? AND status = 'running'"
)
CANCEL_RUN: Final = (
    "UPDATE runs SET status = 'cancelled', available_at = NULL, lease_token = lease_token + 1, "
    "lease_owner = NULL, ended_at = ?, error = ? "
    "WHERE id = ? AND status NOT IN ('completed', 'failed', 'cancelled') "
    "RETURNING parent_run_id, parent_step"
)

SELECT_RUN: Final = "SELECT " + RUN_COLUMNS + " FROM runs WHERE id = ?"
SELECT_RUNS: Final = "SELECT " + RUN_COLUMNS + " FROM runs WHERE id IN ({ids})"
LIST_RUNS: Final = "SELECT " + RUN_COLUMNS + " FROM runs"

DEDUPE_EVENT: Final = (
    "INSERT INTO event_ids (id, expires_at) VALUES (?, ?) ON CONFLICT (id) DO UPDATE "
    "SET expires_at = excluded.expires_at WHERE event_ids.expires_at <= ? RETURNING id"
)
INSERT_EVENT: Final = "INSERT INTO events (id, name, body, received_at) VALUES (?, ?, ?, ?)"
WAITS_FOR_EVENT: Final = (
    "SELECT w.run_id, w.step_key, w.match_path, w.match_value, w.expression, r.input "
    "FROM waits w JOIN runs r ON r.id = w.run_id WHERE w.event_name = ? "
    "AND (w.expires_at IS NULL OR w.expires_at > ?)"
)
LIST_EVENTS: Final = "SELECT seq, id, name, body, received_at FROM events"
RUNS_OF_EVENTS: Final = "SELECT event_id, id FROM runs WHERE event_id IN ({ids}) ORDER BY id"

CRON_LAST: Final = "SELECT last_tick FROM cron_ticks WHERE function_id = ? AND trigger = ?"
CRON_ADVANCE: Final = (
    "INSERT INTO cron_ticks (function_id, trigger, last_tick) VALUES (?, ?, ?) "
    "ON CONFLICT (function_id, trigger) DO UPDATE SET last_tick = excluded.last_tick "
    "WHERE cron_ticks.last_tick < excluded.last_tick"
)

PRUNE_SELECT: Final = "SELECT id FROM runs WHERE ended_at IS NOT NULL AND ended_at < ? LIMIT ?"
PRUNE_STEPS: Final = "DELETE FROM steps WHERE run_id IN ({ids})"
PRUNE_RUNS: Final = "DELETE FROM runs WHERE id IN ({ids})"
PRUNE_EVENT_IDS: Final = "DELETE FROM event_ids WHERE expires_at < ?"
PRUNE_EVENTS: Final = "DELETE FROM events WHERE received_at < ?"

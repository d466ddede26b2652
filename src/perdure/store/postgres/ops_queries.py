"""The SQL of operations on PostgreSQL (:mod:`perdure.store.postgres.operations`): the
workers registry, paused functions and pruning (migration 0008)."""

from __future__ import annotations

from typing import Final

from perdure.store.operations import WORKER_COLUMNS

_NOW: Final = "perdure_now(%(now)s::float8)"
_WORKER_VALUES: Final = (
    "%(id)s::text, %(host)s::text, %(pid)s::int4, %(app)s::text, %(functions)s::text,"
    " %(slots)s::int4, %(used)s::int4, %(stale)s::float8"
)

WORKER_BEAT: Final = (
    "INSERT INTO workers (" + WORKER_COLUMNS + ") SELECT " + _WORKER_VALUES + ", t.now, t.now,"
    " NULL FROM (SELECT " + _NOW + " AS now) t "
    "ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid,"
    " app = excluded.app, functions = excluded.functions, slots = excluded.slots,"
    " slots_used = excluded.slots_used, stale_after = excluded.stale_after,"
    " last_heartbeat = excluded.last_heartbeat, stopped_at = NULL"
)
WORKER_STOP: Final = "UPDATE workers SET stopped_at = " + _NOW + " WHERE id = %(id)s::text"
WORKERS_SEEN: Final = (
    "SELECT " + WORKER_COLUMNS + " FROM workers WHERE last_heartbeat >= %(since)s::float8"
    " ORDER BY started_at, id"
)
WORKERS_PRUNE: Final = (
    "WITH d AS (DELETE FROM workers WHERE last_heartbeat < %(before)s::float8 RETURNING 1)"
    " SELECT count(*) FROM d"
)

# Pausing and resuming move the registry version (caches of the function options refresh);
# resuming announces a wake-up, so that workers claim the queued runs at once.
PAUSE_FUNCTION: Final = (
    "WITH ins AS (INSERT INTO function_pauses (function_id, paused_at)"
    " SELECT %(fid)s::text, " + _NOW + " ON CONFLICT (function_id) DO NOTHING RETURNING 1), "
    "bump AS (UPDATE perdure_meta SET value = (value::bigint + 1)::text"
    " WHERE key = 'registry_version' AND EXISTS (SELECT 1 FROM ins)) "
    "SELECT coalesce((SELECT paused_at FROM function_pauses WHERE function_id = %(fid)s::text),"
    " (SELECT " + _NOW + "))"
)
RESUME_FUNCTION: Final = (
    "WITH del AS (DELETE FROM function_pauses WHERE function_id = %(fid)s::text RETURNING 1), "
    "bump AS (UPDATE perdure_meta SET value = (value::bigint + 1)::text"
    " WHERE key = 'registry_version' AND EXISTS (SELECT 1 FROM del)), "
    "nt AS (SELECT pg_notify(%(wake_channel)s, %(origin)s) FROM del) "
    "SELECT (SELECT count(*) FROM nt)"
)
PAUSED_FUNCTIONS: Final = "SELECT function_id, paused_at FROM function_pauses"

# Ended runs (and their steps) to prune, at most %(limit)s, the oldest end first: of one
# function (%(fid)s), or of every function but %(exclude)s.
_PRUNABLE: Final = (
    " FROM runs WHERE ended_at IS NOT NULL AND ended_at < %(before)s::float8"
    " AND (CASE WHEN %(fid)s::text IS NULL THEN function_id <> ALL(%(exclude)s::text[])"
    " ELSE function_id = %(fid)s::text END)"
)
PRUNE_BATCH: Final = (
    "WITH victims AS (SELECT id" + _PRUNABLE + " ORDER BY ended_at LIMIT %(limit)s"
    " FOR UPDATE SKIP LOCKED), "
    "ds AS (DELETE FROM steps WHERE run_id IN (SELECT id FROM victims)), "
    "da AS (DELETE FROM audit WHERE run_id IN (SELECT id FROM victims)), "
    "dr AS (DELETE FROM runs WHERE id IN (SELECT id FROM victims) RETURNING 1) "
    "SELECT count(*) FROM dr"
)
PRUNE_COUNT: Final = "SELECT function_id, count(*)" + _PRUNABLE + " GROUP BY function_id"

# The store's prune (runs, expired event ids, old events) in one transaction.
PRUNE_RUNS: Final = (
    "WITH victims AS (SELECT id FROM runs WHERE ended_at IS NOT NULL"
    " AND ended_at < %(before)s::float8 ORDER BY ended_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED), "
    "ds AS (DELETE FROM steps WHERE run_id IN (SELECT id FROM victims)), "
    "da AS (DELETE FROM audit WHERE run_id IN (SELECT id FROM victims)), "
    "dr AS (DELETE FROM runs WHERE id IN (SELECT id FROM victims) RETURNING 1) "
    "SELECT count(*) FROM dr"
)
PRUNE_EVENT_IDS: Final = "DELETE FROM event_ids WHERE expires_at < " + _NOW
PRUNE_EVENTS: Final = "DELETE FROM events WHERE received_at < %(before)s::float8"

"""Every SQL statement of the SQLite backend (the schema is in ``sql/``).

Statements with a ``{fids}``, ``{ids}`` or ``{keys}`` field get a list of ``?`` marks (see
:func:`marks`); every other statement is used as is.
"""

from __future__ import annotations

import functools
from typing import Final, LiteralString

from perdure.store.operations import WORKER_COLUMNS
from perdure.store.rows import FUNCTION_COLUMNS, RUN_COLUMNS, STEP_COLUMNS
from perdure.store.schedules import SCHEDULE_COLUMNS

PRAGMAS: Final[tuple[LiteralString, ...]] = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA foreign_keys=OFF",
    "PRAGMA temp_store=MEMORY",
    "PRAGMA cache_size=-32000",
)
SET_SYNCHRONOUS: Final[LiteralString] = "PRAGMA synchronous={}"
SET_BUSY_TIMEOUT: Final[LiteralString] = "PRAGMA busy_timeout={}"
# The write connection never checkpoints on COMMIT; the writer runs checkpoints off the commit
# path (see perdure.store.sqlite.writer).
NO_AUTOCHECKPOINT: Final[LiteralString] = "PRAGMA wal_autocheckpoint=0"
CHECKPOINT: Final[LiteralString] = "PRAGMA wal_checkpoint(PASSIVE)"
SET_JOURNAL_SIZE_LIMIT: Final[LiteralString] = "PRAGMA journal_size_limit={}"

BEGIN: Final[LiteralString] = "BEGIN IMMEDIATE"
COMMIT: Final[LiteralString] = "COMMIT"
ROLLBACK: Final[LiteralString] = "ROLLBACK"
SAVEPOINT: Final[LiteralString] = "SAVEPOINT op"
RELEASE: Final[LiteralString] = "RELEASE op"
ROLLBACK_TO: Final[LiteralString] = "ROLLBACK TO op"
PING: Final[LiteralString] = "SELECT 1"

SCHEMA_VERSION: Final[LiteralString] = "SELECT value FROM perdure_meta WHERE key = 'schema_version'"
SET_SCHEMA_VERSION: Final[LiteralString] = (
    "INSERT INTO perdure_meta (key, value) VALUES ('schema_version', ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)
HAS_META: Final[LiteralString] = (
    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'perdure_meta'"
)

REGISTRY_VERSION: Final[LiteralString] = (
    "SELECT value FROM perdure_meta WHERE key = 'registry_version'"
)
BUMP_REGISTRY: Final[LiteralString] = (
    "UPDATE perdure_meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'registry_version'"
)
UPSERT_FUNCTION: Final[LiteralString] = (
    "INSERT INTO functions (id, app, triggers, config, updated_at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET app = excluded.app, triggers = excluded.triggers, "
    "config = excluded.config, updated_at = excluded.updated_at"
)
SELECT_FUNCTIONS: Final[LiteralString] = (
    "SELECT " + FUNCTION_COLUMNS + " FROM functions ORDER BY id"
)
DELETE_FUNCTION: Final[LiteralString] = "DELETE FROM functions WHERE id = ?"

INSERT_RUN: Final[LiteralString] = (
    "INSERT INTO runs (id, function_id, status, input, event_id, idempotency_key, "
    "parent_run_id, parent_step, available_at, created_at) "
    "VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?)"
)
# Created already leased, unless the function is paused (the last parameter: its id) or the
# idempotency key exists: no row then, and the caller tells which.
INSERT_LEASED_RUN: Final[LiteralString] = (
    "INSERT INTO runs (id, function_id, status, input, event_id, idempotency_key, "
    "parent_run_id, parent_step, available_at, created_at, lease_owner, lease_token, "
    "started_at) SELECT ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, 1, ? WHERE NOT EXISTS "
    "(SELECT 1 FROM function_pauses WHERE function_id = ?) "
    "ON CONFLICT (function_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
)
INSERT_RUN_IDEMPOTENT: Final[LiteralString] = (
    INSERT_RUN + " ON CONFLICT (function_id, idempotency_key) "
    "WHERE idempotency_key IS NOT NULL DO NOTHING"
)
INSERT_FLOW_RUN: Final[LiteralString] = (
    "INSERT INTO runs (id, function_id, status, input, event_id, idempotency_key, "
    "parent_run_id, parent_step, available_at, created_at, priority, concurrency_key, "
    "concurrency_key2, throttle_key, singleton_key, start_by) "
    "VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (function_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
)
RUN_BY_KEY: Final[LiteralString] = (
    "SELECT id FROM runs WHERE function_id = ? AND idempotency_key = ?"
)

SELECT_DUE: Final[LiteralString] = (
    "SELECT id, status, started_at FROM runs "
    "WHERE available_at <= ? AND function_id IN ({fids}) "
    "ORDER BY available_at LIMIT ?"
)
CLAIM_RUN: Final[LiteralString] = (
    "UPDATE runs SET status = 'running', lease_token = lease_token + 1, lease_owner = ?, "
    "gate_key = NULL, "
    "available_at = ?, started_at = coalesce(started_at, ?), crashes = crashes + ? "
    "WHERE id = ? RETURNING function_id, lease_token, input, attempt, crashes, "
    "replay_of IS NOT NULL"
)
NEXT_DUE: Final[LiteralString] = (
    "SELECT min(available_at) FROM runs WHERE available_at IS NOT NULL AND function_id IN ({fids})"
)
STEPS_OF_RUNS: Final[LiteralString] = (
    "SELECT run_id, " + STEP_COLUMNS + " FROM steps WHERE run_id IN ({ids})"
)
STEPS_OF_RUN: Final[LiteralString] = (
    "SELECT " + STEP_COLUMNS + " FROM steps WHERE run_id = ? ORDER BY seq"
)
STEP_OF_RUN: Final[LiteralString] = (
    "SELECT " + STEP_COLUMNS + " FROM steps WHERE run_id = ? AND key = ?"
)

FENCE: Final[LiteralString] = (
    "SELECT id, lease_token FROM runs WHERE status = 'running' AND id IN ({ids})"
)
UPSERT_STEP: Final[LiteralString] = (
    "INSERT INTO steps (run_id, key, seq, kind, status, output, error, attempts, wake_at, "
    "started_at, ended_at, name, input) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (run_id, key) DO UPDATE SET status = excluded.status, "
    "output = excluded.output, error = excluded.error, attempts = excluded.attempts, "
    "wake_at = excluded.wake_at, ended_at = excluded.ended_at, "
    "name = coalesce(excluded.name, steps.name), input = coalesce(excluded.input, steps.input)"
)
# A checkpoint fenced in the statement itself (a batch of one run: no separate FENCE read).
UPSERT_STEP_FENCED: Final[LiteralString] = (
    "INSERT INTO steps (run_id, key, seq, kind, status, output, error, attempts, wake_at, "
    "started_at, ended_at, name, input) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE "
    "EXISTS (SELECT 1 FROM runs WHERE id = ? AND lease_token = ? AND status = 'running') "
    "ON CONFLICT (run_id, key) DO UPDATE SET status = excluded.status, "
    "output = excluded.output, error = excluded.error, attempts = excluded.attempts, "
    "wake_at = excluded.wake_at, ended_at = excluded.ended_at, "
    "name = coalesce(excluded.name, steps.name), input = coalesce(excluded.input, steps.input)"
)
UPSERT_WAIT: Final[LiteralString] = (
    "INSERT OR REPLACE INTO waits (run_id, step_key, event_name, match_path, match_value, "
    "expression, expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
COMPLETE_RUN: Final[LiteralString] = (
    "UPDATE runs SET status = ?, output = ?, error = ?, available_at = NULL, "
    "lease_owner = NULL, ended_at = ? WHERE id = ? RETURNING parent_run_id, parent_step"
)
COMPLETE_RUN_FENCED: Final[LiteralString] = (
    "UPDATE runs SET status = ?, output = ?, error = ?, available_at = NULL, "
    "lease_owner = NULL, ended_at = ? WHERE id = ? AND lease_token = ? AND status = 'running' "
    "RETURNING parent_run_id, parent_step"
)
RETRY_RUN: Final[LiteralString] = (
    "UPDATE runs SET status = 'queued', error = ?, attempt = attempt + 1, available_at = ?, "
    "lease_owner = NULL WHERE id = ?"
)
SUSPEND_RUN: Final[LiteralString] = (
    "UPDATE runs SET status = ?, available_at = ?, lease_owner = NULL WHERE id = ?"
)
RETRY_RUN_FENCED: Final[LiteralString] = RETRY_RUN + " AND lease_token = ? AND status = 'running'"
SUSPEND_RUN_FENCED: Final[LiteralString] = (
    SUSPEND_RUN + " AND lease_token = ? AND status = 'running'"
)
RESOLVED_WATCHED: Final[LiteralString] = (
    "SELECT 1 FROM steps WHERE run_id = ? AND key IN ({keys}) "
    "AND status IN ('completed', 'failed') LIMIT 1"
)
DELETE_WAITS_OF_RUN: Final[LiteralString] = "DELETE FROM waits WHERE run_id = ?"
RESOLVE_STEP: Final[LiteralString] = (
    "UPDATE steps SET status = ?, output = ?, error = ?, ended_at = ? "
    "WHERE run_id = ? AND key = ? AND status IN ('waiting', 'invoking')"
)
DELETE_WAIT: Final[LiteralString] = "DELETE FROM waits WHERE run_id = ? AND step_key = ?"
WAKE_RUN: Final[LiteralString] = (
    "UPDATE runs SET status = 'queued', available_at = min(coalesce(available_at, ?), ?) "
    "WHERE id = ? AND status IN ('waiting', 'sleeping', 'queued')"
)
HEARTBEAT: Final[LiteralString] = (
    "UPDATE runs SET available_at = ? WHERE id = ? AND lease_token = ? AND status = 'running'"
)
CANCEL_RUN: Final[LiteralString] = (
    "UPDATE runs SET status = 'cancelled', available_at = NULL, lease_token = lease_token + 1, "
    "lease_owner = NULL, ended_at = ?, error = ?, reason = coalesce(?, reason) "
    "WHERE id = ? AND status NOT IN ('completed', 'failed', 'cancelled', 'skipped') "
    "RETURNING parent_run_id, parent_step"
)

SELECT_RUN: Final[LiteralString] = "SELECT " + RUN_COLUMNS + " FROM runs WHERE id = ?"
ENDED_SINCE: Final[LiteralString] = (
    "SELECT id FROM runs WHERE ended_at IS NOT NULL AND ended_at >= ? ORDER BY ended_at, id LIMIT ?"
)
SELECT_RUNS: Final[LiteralString] = "SELECT " + RUN_COLUMNS + " FROM runs WHERE id IN ({ids})"
ENDED_RUNS: Final[LiteralString] = (
    "SELECT id, status, output, error FROM runs WHERE id IN ({ids})"
    " AND status IN ('completed', 'failed', 'cancelled', 'skipped')"
)


_RUN_FILTERS: Final[tuple[LiteralString, ...]] = (
    " AND status = :status",
    " AND function_id = :fid",
    " AND id < :before",
    " AND created_at >= :created_after",
    " AND created_at < :created_before",
    " AND id >= :id_lo AND id < :id_hi",
    " AND event_id = :event_id",
    " AND instr(lower(input), :text) > 0",  # lower(): ASCII letters only, as ascii_fold
    " AND (status IN ('completed', 'failed', 'cancelled', 'skipped')) = :ended",
)


@functools.cache
def list_runs(shape: tuple[bool, ...]) -> LiteralString:
    """The statement listing runs, newest first, with the filters of ``shape``
    (:meth:`~perdure.store.base.RunFilter.shape`) given; one constant statement per shape."""
    where: LiteralString = ""
    for given, clause in zip(shape, _RUN_FILTERS, strict=True):
        if given:
            where += clause
    return "SELECT " + RUN_COLUMNS + " FROM runs WHERE 1" + where + " ORDER BY id DESC LIMIT :limit"


DEDUPE_EVENT: Final[LiteralString] = (
    "INSERT INTO event_ids (id, expires_at) VALUES (?, ?) ON CONFLICT (id) DO UPDATE "
    "SET expires_at = excluded.expires_at WHERE event_ids.expires_at <= ? RETURNING id"
)
INSERT_EVENT: Final[LiteralString] = (
    "INSERT INTO events (id, name, body, received_at) VALUES (?, ?, ?, ?)"
)
WAITS_FOR_EVENT: Final[LiteralString] = (
    "SELECT w.run_id, w.step_key, w.match_path, w.match_value, w.expression, r.input "
    "FROM waits w JOIN runs r ON r.id = w.run_id WHERE w.event_name = ? "
    "AND (w.expires_at IS NULL OR w.expires_at > ?)"
)


def _list_events(name: bool, before: bool) -> LiteralString:
    where: LiteralString = ""
    if name:
        where += " AND name = :name"
    if before:
        where += " AND seq < :before"
    return (
        "SELECT seq, id, name, body, received_at FROM events WHERE 1"
        + where
        + " ORDER BY seq DESC LIMIT :limit"
    )


# Keyed by (name given, cursor given).
LIST_EVENTS: Final[dict[tuple[bool, bool], LiteralString]] = {
    (n, b): _list_events(n, b) for n in (False, True) for b in (False, True)
}
RUNS_OF_EVENTS: Final[LiteralString] = (
    "SELECT event_id, id FROM runs WHERE event_id IN ({ids}) ORDER BY id"
)

CRON_LAST: Final[LiteralString] = (
    "SELECT last_tick FROM cron_ticks WHERE function_id = ? AND trigger = ?"
)
CRON_ADVANCE: Final[LiteralString] = (
    "INSERT INTO cron_ticks (function_id, trigger, last_tick) VALUES (?, ?, ?) "
    "ON CONFLICT (function_id, trigger) DO UPDATE SET last_tick = excluded.last_tick "
    "WHERE cron_ticks.last_tick < excluded.last_tick"
)

PRUNE_SELECT: Final[LiteralString] = (
    "SELECT id FROM runs WHERE ended_at IS NOT NULL AND ended_at < ? LIMIT ?"
)
PRUNE_STEPS: Final[LiteralString] = "DELETE FROM steps WHERE run_id IN ({ids})"
PRUNE_RUNS: Final[LiteralString] = "DELETE FROM runs WHERE id IN ({ids})"
PRUNE_AUDIT: Final[LiteralString] = "DELETE FROM audit WHERE run_id IN ({ids})"
PRUNE_EVENT_IDS: Final[LiteralString] = "DELETE FROM event_ids WHERE expires_at < ?"
PRUNE_EVENTS: Final[LiteralString] = "DELETE FROM events WHERE received_at < ?"


def marks(n: int) -> str:
    """``n`` comma-separated ``?`` marks, for an ``IN (...)`` list."""
    return ",".join("?" * n)


# ---------------------------------------------------------------------- claim-time flow control
# (perdure.store.sqlite.flow_claim). Candidates in queue order (the runs_due index carries the
# rowid: keyset pagination on (available_at, rowid)), leaving out runs of saturated keys.
GATED_DUE: Final[LiteralString] = (
    "SELECT rowid, id, function_id, status, started_at, available_at, concurrency_key, "
    "concurrency_key2, throttle_key FROM runs "
    "WHERE available_at <= ? AND function_id IN ({fids}) AND (available_at, rowid) > (?, ?) "
    "AND (concurrency_key IS NULL OR concurrency_key NOT IN ({sat})) "
    "AND (concurrency_key2 IS NULL OR concurrency_key2 NOT IN ({sat})) "
    "ORDER BY available_at, rowid LIMIT ?"
)
# Runs holding a live lease per concurrency key (either column).
RUNNING_BY_KEY: Final[LiteralString] = (
    "SELECT k, count(*) FROM ("
    "SELECT concurrency_key AS k FROM runs WHERE status = 'running' "
    "AND concurrency_key IS NOT NULL AND concurrency_key IN ({keys}) AND available_at > ? "
    "UNION ALL SELECT concurrency_key2 FROM runs WHERE status = 'running' "
    "AND concurrency_key2 IS NOT NULL AND concurrency_key2 IN ({keys}) AND available_at > ?"
    ") GROUP BY k"
)
BUCKETS: Final[LiteralString] = (
    "SELECT key, tat FROM flow_buckets WHERE key IN ({keys}) AND expires_at > ?"
)
UPSERT_BUCKET: Final[LiteralString] = (
    "INSERT INTO flow_buckets (key, tat, expires_at) VALUES (?, ?, ?) "
    "ON CONFLICT (key) DO UPDATE SET tat = excluded.tat, expires_at = excluded.expires_at"
)
# A throttled start, paid: the run leaves the due set until its slot (its throttle key is
# cleared: it does not pay again when it comes due).
DELAY_RUN: Final[LiteralString] = (
    "UPDATE runs SET available_at = ?, throttle_key = NULL, reason = ? WHERE id = ?"
)
PAID_RUN: Final[LiteralString] = "UPDATE runs SET throttle_key = NULL WHERE id = ?"
NEXT_DUE_AFTER: Final[LiteralString] = (
    "SELECT min(available_at) FROM runs WHERE available_at > ? AND function_id IN ({fids})"
)


# ---------------------------------------------------------------------- schedules (0003)

CRON_STATE: Final[LiteralString] = (
    "SELECT c.last_tick, r.status FROM cron_ticks c LEFT JOIN runs r ON r.id = c.last_run_id "
    "WHERE c.function_id = ? AND c.trigger = ?"
)
CRON_LAST_RUN: Final[LiteralString] = (
    "UPDATE cron_ticks SET last_run_id = ? WHERE function_id = ? AND trigger = ?"
)

SCHEDULE_INSERT: Final[LiteralString] = (
    "INSERT INTO schedules (id, function_id, cron, tz, data, overlap, catchup, catchup_window, "
    "paused, last_tick, next_at, revision, created_at, updated_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING"
)
SCHEDULE_SELECT: Final[LiteralString] = (
    "SELECT " + SCHEDULE_COLUMNS + " FROM schedules WHERE id = ?"
)


def _list_schedules(function: bool, after: bool) -> LiteralString:
    where: LiteralString = ""
    if function:
        where += " AND function_id = :fid"
    if after:
        where += " AND id > :after"
    return (
        "SELECT "
        + SCHEDULE_COLUMNS
        + " FROM schedules WHERE 1"
        + where
        + " ORDER BY id LIMIT :limit"
    )


# Keyed by (function given, cursor given).
SCHEDULES_LIST: Final[dict[tuple[bool, bool], LiteralString]] = {
    (f, a): _list_schedules(f, a) for f in (False, True) for a in (False, True)
}
SCHEDULE_PAUSE: Final[LiteralString] = (
    "UPDATE schedules SET paused = 1, revision = ?, updated_at = ? WHERE id = ? AND paused = 0"
)
SCHEDULE_RESUME: Final[LiteralString] = (
    "UPDATE schedules SET paused = 0, revision = ?, last_tick = max(last_tick, ?), next_at = ?, "
    "updated_at = ? WHERE id = ? AND paused = 1"
)
SCHEDULE_DELETE: Final[LiteralString] = "DELETE FROM schedules WHERE id = ?"
SCHEDULES_DUE: Final[LiteralString] = (
    "SELECT " + SCHEDULE_COLUMNS + " FROM schedules WHERE paused = 0 AND next_at <= ? "
    "AND function_id IN ({fids}) ORDER BY next_at LIMIT ?"
)
SCHEDULE_NEXT: Final[LiteralString] = (
    "SELECT min(next_at) FROM schedules WHERE paused = 0 AND function_id IN ({fids})"
)
# The firing state of a schedule: the fields the compare-and-set reads, and the status of
# its previous run (NULL: none, or pruned).
SCHEDULE_STATE: Final[LiteralString] = (
    "SELECT s.revision, s.paused, s.last_tick, s.overlap, r.status FROM schedules s "
    "LEFT JOIN runs r ON r.id = s.last_run_id WHERE s.id = ?"
)
SCHEDULE_ADVANCE: Final[LiteralString] = (
    "UPDATE schedules SET last_tick = ?, next_at = ?, missed = missed + ?, "
    "skipped_overlap = skipped_overlap + ?, runs = runs + ?, "
    "last_run_id = coalesce(?, last_run_id) WHERE id = ?"
)
SCHEDULE_TRIGGERED: Final[LiteralString] = (
    "UPDATE schedules SET runs = runs + 1, last_run_id = ? WHERE id = ?"
)

# Reruns and replays (perdure.store.sqlite.derived).
RUN_EXISTS: Final[LiteralString] = "SELECT 1 FROM runs WHERE id = ?"
LINK_RUN: Final[LiteralString] = (
    "UPDATE runs SET rerun_of = ?, replay_of = ?, replay_from_step = ? WHERE id = ?"
)
COPY_STEPS: Final[LiteralString] = (
    "INSERT INTO steps (run_id, key, seq, kind, status, output, error, attempts, wake_at, "
    "started_at, ended_at, name, input) SELECT ?, key, seq, kind, status, output, error, "
    "attempts, wake_at, started_at, ended_at, name, input FROM steps "
    "WHERE run_id = ? AND status = 'completed' AND seq < ?"
)


# ---------------------------------------------------------------------- operations (0008)

WORKER_BEAT: Final[LiteralString] = (
    "INSERT INTO workers (" + WORKER_COLUMNS + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL) "
    "ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, "
    "app = excluded.app, functions = excluded.functions, slots = excluded.slots, "
    "slots_used = excluded.slots_used, stale_after = excluded.stale_after, "
    "last_heartbeat = excluded.last_heartbeat, stopped_at = NULL"
)
WORKER_STOP: Final[LiteralString] = "UPDATE workers SET stopped_at = ? WHERE id = ?"
WORKERS_SEEN: Final[LiteralString] = (
    "SELECT " + WORKER_COLUMNS + " FROM workers WHERE last_heartbeat >= ? ORDER BY started_at, id"
)
WORKERS_PRUNE: Final[LiteralString] = "DELETE FROM workers WHERE last_heartbeat < ?"
PAUSE_FUNCTION: Final[LiteralString] = (
    "INSERT INTO function_pauses (function_id, paused_at) VALUES (?, ?) "
    "ON CONFLICT (function_id) DO NOTHING"
)
RESUME_FUNCTION: Final[LiteralString] = "DELETE FROM function_pauses WHERE function_id = ?"
PAUSED_AT: Final[LiteralString] = "SELECT paused_at FROM function_pauses WHERE function_id = ?"
PAUSED_FUNCTIONS: Final[LiteralString] = "SELECT function_id, paused_at FROM function_pauses"
PAUSED_AMONG: Final[LiteralString] = (
    "SELECT function_id FROM function_pauses WHERE function_id IN ({fids})"
)
# Ended runs to prune, the oldest end first (on the runs_ended index): of one function, or of
# every function but some.
PRUNE_PICK_ONE: Final[LiteralString] = (
    "SELECT id FROM runs WHERE ended_at IS NOT NULL AND ended_at < ? AND function_id = ? "
    "ORDER BY ended_at LIMIT ?"
)
PRUNE_PICK_OTHERS: Final[LiteralString] = (
    "SELECT id FROM runs WHERE ended_at IS NOT NULL AND ended_at < ? "
    "AND function_id NOT IN ({fids}) ORDER BY ended_at LIMIT ?"
)
PRUNE_COUNT_ONE: Final[LiteralString] = (
    "SELECT function_id, count(*) FROM runs WHERE ended_at IS NOT NULL AND ended_at < ? "
    "AND function_id = ? GROUP BY function_id"
)
PRUNE_COUNT_OTHERS: Final[LiteralString] = (
    "SELECT function_id, count(*) FROM runs WHERE ended_at IS NOT NULL AND ended_at < ? "
    "AND function_id NOT IN ({fids}) GROUP BY function_id"
)

"""The SQL of schedules and cron triggers on PostgreSQL (migration 0003): this section of
:mod:`perdure.store.postgres.queries`, apart to keep each module short; the same conventions
(constant text, named parameters, ``perdure_now(%(now)s)`` as the clock).

Firing a tick runs :data:`SCHEDULE_LOCK` and :data:`SCHEDULE_PREVIOUS` first, then the backend's
``INSERT_RUNS`` (when the tick runs) and :data:`SCHEDULE_ADVANCE`, in one transaction (see
:mod:`perdure.store.postgres.schedules`).
"""

from __future__ import annotations

from typing import Final, LiteralString

from perdure.store.schedules import SCHEDULE_COLUMNS

_T: Final = "t AS (SELECT perdure_now(%(now)s::float8) AS now)"


SCHEDULE_INSERT: Final = (
    "WITH " + _T + " "
    "INSERT INTO schedules (id, function_id, cron, tz, data, overlap, catchup, catchup_window,"
    " paused, last_tick, next_at, revision, created_at, updated_at)"
    " SELECT %(id)s, %(fid)s, %(cron)s, %(tz)s, %(data)s, %(overlap)s, %(catchup)s,"
    " %(window)s::float8, %(paused)s::bool, %(start)s::float8, %(next_at)s::float8,"
    " %(revision)s, t.now, t.now FROM t"
    " ON CONFLICT (id) DO NOTHING RETURNING " + SCHEDULE_COLUMNS
)
SCHEDULE_SELECT: Final = "SELECT " + SCHEDULE_COLUMNS + " FROM schedules WHERE id = %(id)s"


def _list_schedules(function: bool, after: bool) -> LiteralString:
    where: LiteralString = ""
    if function:
        where += " AND function_id = %(fid)s"
    if after:
        where += " AND id > %(after)s"
    return (
        "SELECT "
        + SCHEDULE_COLUMNS
        + " FROM schedules WHERE true"
        + where
        + " ORDER BY id LIMIT %(limit)s"
    )


# Keyed by (function given, cursor given).
SCHEDULES_LIST: Final[dict[tuple[bool, bool], LiteralString]] = {
    (f, a): _list_schedules(f, a) for f in (False, True) for a in (False, True)
}
# Pause (resume) a schedule that is active (paused); either way, the schedule as it now is.
SCHEDULE_PAUSE: Final = (
    "WITH " + _T + ", "
    "u AS (UPDATE schedules SET paused = true, revision = %(revision)s, updated_at = t.now"
    " FROM t WHERE id = %(id)s AND NOT paused RETURNING " + SCHEDULE_COLUMNS + ") "
    "SELECT * FROM u UNION ALL SELECT " + SCHEDULE_COLUMNS + " FROM schedules"
    " WHERE id = %(id)s AND NOT EXISTS (SELECT 1 FROM u)"
)
SCHEDULE_RESUME: Final = (
    "WITH " + _T + ", "
    "u AS (UPDATE schedules SET paused = false, revision = %(revision)s,"
    " last_tick = greatest(last_tick, %(cursor)s::float8), next_at = %(next_at)s::float8,"
    " updated_at = t.now FROM t WHERE id = %(id)s AND paused"
    " RETURNING " + SCHEDULE_COLUMNS + ") "
    "SELECT * FROM u UNION ALL SELECT " + SCHEDULE_COLUMNS + " FROM schedules"
    " WHERE id = %(id)s AND NOT EXISTS (SELECT 1 FROM u)"
)
SCHEDULE_DELETE: Final = "DELETE FROM schedules WHERE id = %(id)s RETURNING 1"
SCHEDULES_DUE: Final = (
    "SELECT " + SCHEDULE_COLUMNS + " FROM schedules WHERE NOT paused"
    " AND next_at <= %(now)s::float8 AND function_id = ANY(%(fids)s::text[])"
    " ORDER BY next_at LIMIT %(limit)s"
)
SCHEDULE_NEXT: Final = (
    "SELECT min(next_at) FROM schedules WHERE NOT paused AND function_id = ANY(%(fids)s::text[])"
)
# Firing: lock the schedule's row, then (a new snapshot, in the same transaction) read the
# status of its previous run; then SCHEDULE_ADVANCE (after INSERT_RUNS when the tick runs).
SCHEDULE_LOCK: Final = (
    "SELECT revision, paused, last_tick, overlap FROM schedules WHERE id = %(id)s FOR UPDATE"
)
SCHEDULE_PREVIOUS: Final = (
    "SELECT r.status FROM schedules s JOIN runs r ON r.id = s.last_run_id WHERE s.id = %(id)s"
)
# The tick's run (when it ran): named (created through the flow-control path), or found by
# its idempotency key (INSERT_RUNS, in the same round trip: the run just inserted, or the
# existing one that key names).
SCHEDULE_ADVANCE: Final = (
    "UPDATE schedules SET last_tick = %(tick)s::float8, next_at = %(next_at)s::float8,"
    " missed = missed + %(missed)s::int8, skipped_overlap = skipped_overlap + %(skipped)s::int8,"
    " runs = runs + %(ran)s::int8, last_run_id = coalesce(%(run_id)s::text, (SELECT r.id"
    " FROM runs r WHERE r.function_id = %(fid)s AND r.idempotency_key = %(key)s::text),"
    " last_run_id) WHERE id = %(id)s"
)
SCHEDULE_TRIGGERED: Final = (
    "UPDATE schedules SET runs = runs + 1, last_run_id = %(run_id)s WHERE id = %(id)s"
)

# ---------------------------------------------------------------------- cron triggers

# Advance the trigger's last tick (only forward: once across all schedulers) and, if it
# advanced, create the tick's run and record it as the trigger's last run. With %(skip)s, no
# run while that last run has not ended (busy): the tick still advances. The busy check is
# exact only after CRON_LOCK in the same transaction (as fire_cron does).
FIRE_CRON: Final = (
    "WITH " + _T + ", "
    "busy AS (SELECT 1 FROM cron_ticks c JOIN runs r ON r.id = c.last_run_id"
    " WHERE %(skip)s::bool AND c.function_id = %(fid)s AND c.trigger = %(trigger)s"
    " AND r.status NOT IN ('completed', 'failed', 'cancelled', 'skipped')), "
    "adv AS (INSERT INTO cron_ticks (function_id, trigger, last_tick, last_run_id)"
    " VALUES (%(fid)s, %(trigger)s, %(tick)s::float8, %(id)s::text)"
    " ON CONFLICT (function_id, trigger)"
    " DO UPDATE SET last_tick = excluded.last_tick, last_run_id = CASE"
    " WHEN excluded.last_run_id IS NULL OR EXISTS (SELECT 1 FROM busy)"
    " THEN cron_ticks.last_run_id ELSE excluded.last_run_id END"
    " WHERE cron_ticks.last_tick < excluded.last_tick RETURNING 1), "
    "ins AS (INSERT INTO runs (id, function_id, status, input, event_id, idempotency_key,"
    " parent_run_id, parent_step, available_at, created_at)"
    " SELECT %(id)s::text, %(run_fid)s::text, 'queued', %(input)s::text, %(event_id)s::text,"
    " %(key)s::text, %(parent)s::text, %(parent_step)s::text, t.now, t.now"
    " FROM t"
    " WHERE %(id)s::text IS NOT NULL AND EXISTS (SELECT 1 FROM adv)"
    " AND NOT EXISTS (SELECT 1 FROM busy)"
    " ON CONFLICT (function_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
    " RETURNING id), "
    "nt AS (SELECT pg_notify(%(wake_channel)s, %(origin)s) FROM (SELECT 1 FROM ins LIMIT 1) x) "
    "SELECT (SELECT count(*) FROM adv), (SELECT count(*) FROM ins), (SELECT count(*) FROM nt),"
    " (SELECT count(*) FROM busy)"
)
# The trigger's row, locked before the busy check of overlap="skip"; the last run, recorded
# after a run created by the flow-control path.
CRON_LOCK: Final = (
    "SELECT 1 FROM cron_ticks WHERE function_id = %(fid)s AND trigger = %(trigger)s FOR UPDATE"
)
CRON_LAST_RUN: Final = (
    "UPDATE cron_ticks SET last_run_id = %(run_id)s"
    " WHERE function_id = %(fid)s AND trigger = %(trigger)s"
)

"""The SQL of claim-time flow control on PostgreSQL (:mod:`perdure.store.postgres.flow_claim`)."""

from __future__ import annotations

from typing import Final

from perdure.store.rows import STEP_COLUMNS

_NOW: Final = "perdure_now(%(now)s::float8)"

# One transaction: the time; candidates in queue order,
# locked, leaving out runs of saturated keys (keyset pagination on the runs_due index); the keys'
# advisory locks (tried: a key another claimer is deciding is left to it), then, in later
# statements (READ COMMITTED: after the locks), the live-lease counts and throttle states.
GATED_NOW: Final = "SELECT " + _NOW
GATED_DUE: Final = (
    "SELECT id, function_id, status, started_at, available_at, concurrency_key,"
    " concurrency_key2, throttle_key FROM runs"
    " WHERE available_at <= %(now)s::float8 AND function_id = ANY(%(fids)s::text[])"
    " AND (available_at, id) > (%(after_at)s::float8, %(after_id)s::text)"
    " AND NOT coalesce(concurrency_key = ANY(%(sat)s::text[]), false)"
    " AND NOT coalesce(concurrency_key2 = ANY(%(sat)s::text[]), false)"
    " ORDER BY available_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED"
)
LOCK_KEYS: Final = (
    "SELECT k FROM unnest(%(keys)s::text[]) AS k"
    " WHERE pg_try_advisory_xact_lock(hashtextextended(k, 0))"
)
RUNNING_BY_KEY: Final = (
    "SELECT k, count(*) FROM ("
    "SELECT concurrency_key AS k FROM runs WHERE status = 'running'"
    " AND concurrency_key = ANY(%(keys)s::text[]) AND available_at > %(now)s::float8"
    " UNION ALL SELECT concurrency_key2 FROM runs WHERE status = 'running'"
    " AND concurrency_key2 = ANY(%(keys)s::text[]) AND available_at > %(now)s::float8"
    ") x GROUP BY k"
)
BUCKETS: Final = (
    "SELECT key, tat FROM flow_buckets WHERE key = ANY(%(keys)s::text[])"
    " AND expires_at > %(now)s::float8"
)
UPSERT_BUCKETS: Final = (
    "INSERT INTO flow_buckets (key, tat, expires_at)"
    " SELECT k, t, t FROM unnest(%(keys)s::text[], %(tats)s::float8[]) AS b(k, t)"
    " ON CONFLICT (key) DO UPDATE SET tat = excluded.tat, expires_at = excluded.expires_at"
)
# A throttled start, paid: the run leaves the due set until its slot.
DELAY_RUNS: Final = (
    "UPDATE runs r SET available_at = d.at, throttle_key = NULL, reason = d.reason"
    " FROM unnest(%(ids)s::text[], %(ats)s::float8[], %(reasons)s::text[]) AS d(id, at, reason)"
    " WHERE r.id = d.id"
)
CLAIM_IDS: Final = (
    "UPDATE runs r SET status = 'running', lease_token = r.lease_token + 1,"
    " lease_owner = %(worker)s, available_at = %(now)s::float8 + %(lease)s::float8,"
    " started_at = coalesce(r.started_at, %(now)s::float8), gate_key = NULL,"
    " crashes = r.crashes + CASE WHEN r.status = 'running' THEN 1 ELSE 0 END,"
    " throttle_key = CASE WHEN r.id = ANY(%(paid)s::text[]) THEN NULL ELSE r.throttle_key END"
    " WHERE r.id = ANY(%(ids)s::text[])"
    " RETURNING r.id, r.function_id, r.lease_token, r.input, r.attempt, r.crashes"
)
STEPS_OF_RUNS: Final = (
    "SELECT run_id, " + STEP_COLUMNS + " FROM steps WHERE run_id = ANY(%(ids)s::text[])"
)
NEXT_DUE_AFTER: Final = (
    "SELECT min(available_at) FROM runs WHERE available_at > %(now)s::float8"
    " AND function_id = ANY(%(fids)s::text[])"
)

# Why a due run waits (a read): its concurrency keys and, for each, the runs holding a live
# lease on it now (counted as RUNNING_BY_KEY does: under either column). No row when the run is
# not due (available_at in the future, or NULL once ended) or holds no concurrency key.
_LIVE: Final = "SELECT count(*) FROM runs x WHERE x.status = 'running' AND x.available_at > t.now"
KEY_LOAD: Final = (
    "WITH t AS (SELECT " + _NOW + " AS now) "
    "SELECT t.now, r.concurrency_key, r.concurrency_key2,"
    " (" + _LIVE + " AND x.concurrency_key = r.concurrency_key)"
    " + (" + _LIVE + " AND x.concurrency_key2 = r.concurrency_key),"
    " (" + _LIVE + " AND x.concurrency_key = r.concurrency_key2)"
    " + (" + _LIVE + " AND x.concurrency_key2 = r.concurrency_key2)"
    " FROM runs r, t WHERE r.id = %(id)s AND r.available_at <= t.now"
    " AND (r.concurrency_key IS NOT NULL OR r.concurrency_key2 IS NOT NULL)"
)

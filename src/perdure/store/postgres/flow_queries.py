"""The SQL of claim-time flow control on PostgreSQL (:mod:`perdure.store.postgres.flow_claim`)."""

from __future__ import annotations

from typing import Final

from perdure.store.postgres import queries as q
from perdure.store.rows import STEP_COLUMNS

_NOW: Final = "perdure_now(%(now)s::float8)"

# One transaction: the time (perdure_now is the transaction's time: the same in every
# statement); candidates in queue order,
# locked, leaving out runs of saturated keys (keyset pagination on the runs_due index); the keys'
# advisory locks (tried: a key another claimer is deciding is left to it), then, in later
# statements (READ COMMITTED: after the locks), the live-lease counts and throttle states.
GATED_NOW: Final = "SELECT " + _NOW
GATED_DUE: Final = (
    "SELECT id, function_id, status, started_at, available_at, concurrency_key,"
    " concurrency_key2, throttle_key, replay_of IS NOT NULL FROM runs"
    " WHERE available_at <= "
    + _NOW
    + " AND function_id = ANY(%(fids)s::text[])"
    + q.UNPAUSED
    + " AND (available_at, id) > (%(after_at)s::float8, %(after_id)s::text)"
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
    " FROM (SELECT id, status, started_at FROM runs WHERE id = ANY(%(ids)s::text[])) o"
    " WHERE r.id = o.id"
    " RETURNING r.id, r.function_id, r.lease_token, r.input, r.attempt, r.crashes,"
    " o.started_at IS NULL, o.status = 'running'"
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

# Create runs under flow control that pass no creation-time gate, in one statement (the many-row
# form of queries.INSERT_FLOW_RUN, for store/postgres/flow.py): one row per run, in order, with
# whether it was created and the run holding its idempotency key (one created earlier in the
# same statement, or one committed before it; NULL when a concurrent transaction committed it
# meanwhile: the caller looks it up). One notification when any run was created.
INSERT_FLOW_RUNS: Final = (
    "WITH t AS (SELECT " + _NOW + " AS now), "
    "v AS (SELECT * FROM json_to_recordset(%(runs)s::json) AS v(ord int4, id text, fid text,"
    " input text, event_id text, key text, parent text, parent_step text, priority int4,"
    " ck1 text, ck2 text, throttle_key text, singleton_key text, start_timeout float8)), "
    "ins AS (INSERT INTO runs (id, function_id, status, input, event_id, idempotency_key,"
    " parent_run_id, parent_step, available_at, created_at, priority, concurrency_key,"
    " concurrency_key2, throttle_key, singleton_key, start_by)"
    " SELECT v.id, v.fid, 'queued', v.input, v.event_id, v.key, v.parent, v.parent_step,"
    " t.now - v.priority, t.now, v.priority, v.ck1, v.ck2, v.throttle_key, v.singleton_key,"
    " t.now + v.start_timeout FROM v, t ORDER BY v.ord"
    " ON CONFLICT (function_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
    " RETURNING id, function_id, idempotency_key), "
    "nt AS (SELECT pg_notify(%(wake_channel)s, %(origin)s)"
    " FROM (SELECT 1 FROM ins LIMIT 1) x) "
    "SELECT v.id, ins.id IS NOT NULL, coalesce(k.id, e.id), (SELECT count(*) FROM nt) "
    "FROM v LEFT JOIN ins ON ins.id = v.id "
    "LEFT JOIN ins k ON k.function_id = v.fid AND k.idempotency_key = v.key "
    "LEFT JOIN runs e ON e.function_id = v.fid AND e.idempotency_key = v.key "
    "ORDER BY v.ord"
)

"""Every SQL statement of the PostgreSQL backend (the schema is in ``sql/``).

Conventions:

- Statements are constant text with named parameters, so psycopg prepares them after a few
  executions on each connection (``prepare_threshold``). A batch of rows travels as one JSON
  array expanded with ``json_to_recordset`` (measured: a third of the client CPU of one array
  parameter per column, and less server time), a list of ids as an array; a batch of any size
  is one statement.
- ``perdure_now(%(now)s)`` is the store's clock: the database's ``now()`` (the transaction's
  start) when ``now`` is NULL, the test's manual clock otherwise.
- Every write to another run's steps first locks that run's row, and row locks are taken in id
  order (``ORDER BY id FOR NO KEY UPDATE``): a checkpoint holding its runs' locks can never
  interleave with a takeover, an event or a child resolving one of its steps.
- Notifications (``pg_notify``) are sent from inside the statements that make work due, so
  they cost no extra round trip; PostgreSQL folds identical notifications of one transaction
  into one. A run leaving the executing state with an environment-scoped concurrency key also
  announces a wake-up: another function's run elsewhere may wait for its slot (function-scoped
  keys do not: the freeing worker claims again itself; see docs/flow-control.md).
"""

from __future__ import annotations

from typing import Final, LiteralString

from perdure.store.rows import FUNCTION_COLUMNS, RUN_COLUMNS, STEP_COLUMNS

# ---------------------------------------------------------------------- time, transactions

_NOW: Final = "perdure_now(%(now)s::float8)"
_T: Final = "t AS (SELECT " + _NOW + " AS now)"
T_NOW: Final = _T  # the ``t(now)`` CTE, for the other modules' statements
BEGIN: Final = "BEGIN"
COMMIT: Final = "COMMIT"
ALIVE: Final = "SELECT 1"
# The run's function is not paused (an anti-join on a small table, usually empty).
UNPAUSED: Final = (
    " AND NOT EXISTS (SELECT 1 FROM function_pauses fp WHERE fp.function_id = runs.function_id)"
)

# ---------------------------------------------------------------------- schema and migrations

CREATE_SCHEMA: Final = "CREATE SCHEMA {}"
SET_LOCAL_SEARCH_PATH: Final = "SET LOCAL search_path TO {}"
LISTEN: Final = "LISTEN {}"
MIGRATION_LOCK: Final = "SELECT pg_advisory_xact_lock(%(key)s)"
SCHEMA_EXISTS: Final = "SELECT 1 FROM pg_namespace WHERE nspname = %(schema)s"
HAS_META: Final = (
    "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = %(schema)s AND c.relname = 'perdure_meta'"
)
SCHEMA_VERSION: Final = "SELECT value FROM perdure_meta WHERE key = 'schema_version'"
SET_SCHEMA_VERSION: Final = (
    "INSERT INTO perdure_meta (key, value) VALUES ('schema_version', %(version)s) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)
DB_NOW: Final = "SELECT extract(epoch FROM now())::double precision"
PING: Final = "SELECT " + _NOW

# ---------------------------------------------------------------------- functions

REGISTER_FUNCTIONS: Final = (
    "WITH up AS ("
    " INSERT INTO functions (id, app, triggers, config, updated_at)"
    " SELECT f.id, f.app, f.triggers, f.config, " + _NOW + " FROM unnest("
    "%(ids)s::text[], %(apps)s::text[], %(triggers)s::text[], %(configs)s::text[]"
    ") AS f(id, app, triggers, config) ORDER BY f.id"
    " ON CONFLICT (id) DO UPDATE SET app = excluded.app, triggers = excluded.triggers,"
    " config = excluded.config, updated_at = excluded.updated_at"
    " RETURNING 1) "
    "UPDATE perdure_meta SET value = (value::bigint + 1)::text WHERE key = 'registry_version'"
)
SELECT_FUNCTIONS: Final = "SELECT " + FUNCTION_COLUMNS + " FROM functions ORDER BY id"
REMOVE_FUNCTIONS: Final = (
    "WITH gone AS (DELETE FROM functions WHERE id = ANY(%(ids)s::text[]) RETURNING 1) "
    "UPDATE perdure_meta SET value = (value::bigint + 1)::text WHERE key = 'registry_version'"
)
# The registry version, and every function only if it differs from the cached one.
REGISTRY_IF_CHANGED: Final = (
    "SELECT m.value, f.id, f.app, f.triggers, f.config FROM perdure_meta m "
    "LEFT JOIN functions f ON m.value IS DISTINCT FROM %(known)s::text "
    "WHERE m.key = 'registry_version' ORDER BY f.id"
)

# ---------------------------------------------------------------------- runs (client side)

# Create runs, due now (or already leased to %(owners)s[i]: running, token 1, their lease
# running). An existing (function_id, idempotency_key) wins; the result names it
# (when it was committed after this statement's snapshot, run_by_key finds it).
INSERT_RUNS: Final = (
    "WITH " + _T + ", "
    "j AS (SELECT * FROM json_to_recordset(%(runs)s::json) AS j(ord int4, id text,"
    " function_id text, input text, event_id text, idempotency_key text, parent_run_id text,"
    " parent_step text, owner text, lease float8)), "
    "v AS (SELECT j.ord, j.id, j.function_id, j.input, j.event_id, j.idempotency_key,"
    " j.parent_run_id, j.parent_step, CASE WHEN j.owner IS NULL THEN NULL"
    " WHEN EXISTS (SELECT 1 FROM function_pauses fp WHERE fp.function_id = j.function_id)"
    " THEN NULL ELSE j.owner END AS owner, j.lease FROM j), "
    "ins AS ("
    " INSERT INTO runs (id, function_id, status, input, event_id, idempotency_key,"
    " parent_run_id, parent_step, available_at, created_at, lease_owner,"
    " lease_token, started_at)"
    " SELECT v.id, v.function_id, CASE WHEN v.owner IS NULL THEN 'queued' ELSE 'running' END,"
    " v.input, v.event_id, v.idempotency_key, v.parent_run_id, v.parent_step,"
    " t.now + CASE WHEN v.owner IS NULL THEN 0 ELSE v.lease END, t.now, v.owner,"
    " CASE WHEN v.owner IS NULL THEN 0 ELSE 1 END,"
    " CASE WHEN v.owner IS NOT NULL THEN t.now END"
    " FROM v, t ORDER BY v.ord"
    " ON CONFLICT (function_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
    " RETURNING id, function_id, idempotency_key, lease_token), "
    "nt AS (SELECT pg_notify(%(wake_channel)s, %(origin)s)"
    " FROM (SELECT 1 FROM ins WHERE lease_token = 0 LIMIT 1) x) "
    "SELECT v.id, ins.id IS NOT NULL, coalesce(k.id, e.id), (SELECT count(*) FROM nt),"
    " nullif(ins.lease_token, 0) "
    "FROM v LEFT JOIN ins ON ins.id = v.id "
    "LEFT JOIN ins k ON k.function_id = v.function_id AND k.idempotency_key = v.idempotency_key "
    "LEFT JOIN runs e ON e.function_id = v.function_id "
    "AND e.idempotency_key = v.idempotency_key "
    "ORDER BY v.ord"
)
# Create one run under flow control (store/postgres/flow.py): its keys, its priority (a head
# start on available_at) and its start deadline. An existing idempotency key wins (no row).
INSERT_FLOW_RUN: Final = (
    "WITH " + _T + ", "
    "ins AS (INSERT INTO runs (id, function_id, status, input, event_id, idempotency_key,"
    " parent_run_id, parent_step, available_at, created_at, priority, concurrency_key,"
    " concurrency_key2, throttle_key, singleton_key, start_by)"
    " SELECT %(id)s::text, %(fid)s::text, 'queued', %(input)s::text, %(event_id)s::text,"
    " %(key)s::text, %(parent)s::text, %(parent_step)s::text,"
    " t.now - %(priority)s::int4, t.now, %(priority)s::int4, %(ck1)s::text, %(ck2)s::text,"
    " %(throttle_key)s::text, %(singleton_key)s::text, t.now + %(start_timeout)s::float8"
    " FROM t"
    " ON CONFLICT (function_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
    " RETURNING id), "
    "nt AS (SELECT pg_notify(%(wake_channel)s, %(origin)s) FROM ins) "
    "SELECT ins.id, (SELECT count(*) FROM nt) FROM ins"
)
RUN_BY_KEY: Final = "SELECT id FROM runs WHERE function_id = %(fid)s AND idempotency_key = %(key)s"

SELECT_RUN: Final = "SELECT " + RUN_COLUMNS + " FROM runs WHERE id = %(id)s"
SELECT_RUNS: Final = "SELECT " + RUN_COLUMNS + " FROM runs WHERE id = ANY(%(ids)s::text[])"
ENDED_RUNS: Final = (
    "SELECT id, status, output, error FROM runs WHERE id = ANY(%(ids)s::text[])"
    " AND status IN ('completed', 'failed', 'cancelled', 'skipped')"
)
ENDED_SINCE: Final = (
    "SELECT id FROM runs WHERE ended_at IS NOT NULL AND ended_at >= %(since)s "
    "ORDER BY ended_at, id LIMIT %(limit)s"
)
STEPS_OF_RUN: Final = (
    "SELECT " + STEP_COLUMNS + " FROM steps WHERE run_id = %(id)s ORDER BY seq, key"
)


# Cancel a run that has not ended (a new token fences its worker), drop its waits, fail its
# parent's invoke step (locking the parent first) and wake the parent.
CANCEL_RUN: Final = (
    "WITH " + _T + ", "
    "c AS (UPDATE runs SET status = 'cancelled', available_at = NULL,"
    " lease_token = lease_token + 1, lease_owner = NULL, ended_at = t.now, error = %(error)s,"
    " reason = coalesce(%(reason)s::text, reason)"
    " FROM t WHERE id = %(id)s AND status NOT IN ('completed', 'failed', 'cancelled', 'skipped')"
    " RETURNING id, parent_run_id, parent_step,"
    " (left(concurrency_key, 2) = 'e:' OR left(concurrency_key2, 2) = 'e:') AS gated), "
    "dw AS (DELETE FROM waits WHERE run_id IN (SELECT id FROM c)), "
    "pl AS (SELECT r.id FROM runs r, c WHERE r.id = c.parent_run_id FOR NO KEY UPDATE OF r), "
    "rs AS (UPDATE steps s SET status = 'failed', output = NULL, error = %(error)s,"
    " ended_at = t.now FROM c, pl, t WHERE s.run_id = pl.id AND s.key = c.parent_step"
    " AND s.status IN ('waiting', 'invoking') RETURNING s.run_id), "
    "wk AS (UPDATE runs r SET status = 'queued',"
    " available_at = least(coalesce(r.available_at, t.now), t.now)"
    " FROM (SELECT DISTINCT run_id FROM rs) p, t WHERE r.id = p.run_id"
    " AND r.status IN ('waiting', 'sleeping', 'queued') RETURNING r.id), "
    "nw AS (SELECT pg_notify(%(wake_channel)s, %(origin)s) FROM (SELECT 1 FROM wk"
    " UNION ALL SELECT 1 FROM c WHERE c.gated LIMIT 1) x), "
    "nf AS (SELECT pg_notify(%(done_channel)s, %(origin)s || ':' || id) FROM c) "
    "SELECT (SELECT count(*) FROM c), (SELECT count(*) FROM wk), "
    "(SELECT count(*) FROM nw), (SELECT count(*) FROM nf)"
)

# ---------------------------------------------------------------------- events

EVENT_DEDUPE: Final = (
    "INSERT INTO event_ids (id, expires_at) "
    "SELECT id, " + _NOW + " + %(window)s::float8 FROM unnest(%(ids)s::text[]) AS id ORDER BY id "
    "ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at "
    "WHERE event_ids.expires_at <= " + _NOW + " RETURNING id"
)
WAITS_FOR_EVENTS: Final = (
    "SELECT w.event_name, w.run_id, w.step_key, w.match_path, w.match_value, w.expression, "
    "CASE WHEN w.expression IS NOT NULL THEN r.input END "
    "FROM waits w JOIN runs r ON r.id = w.run_id WHERE w.event_name = ANY(%(names)s::text[]) "
    "AND (w.expires_at IS NULL OR w.expires_at > " + _NOW + ") "
    "ORDER BY w.created_at, w.run_id, w.step_key"
)
INSERT_EVENTS: Final = (
    "INSERT INTO events (id, name, body, received_at) "
    "SELECT e.id, e.name, e.body, " + _NOW + " FROM json_to_recordset(%(events)s::json)"
    " AS e(ord int4, id text, name text, body text) ORDER BY e.ord"
)
# Complete the matched waiting steps with their events (the run's row is locked first), drop
# the waits, and make the runs due.
RESOLVE_WAITS: Final = (
    "WITH " + _T + ", "
    "v AS (SELECT * FROM json_to_recordset(%(waits)s::json)"
    " AS v(run_id text, key text, output text)), "
    "lk AS (SELECT id FROM runs WHERE id = ANY(%(runs)s::text[])"
    " ORDER BY id FOR NO KEY UPDATE), "
    "res AS (UPDATE steps s SET status = 'completed', output = v.output, error = NULL,"
    " ended_at = t.now FROM v, lk, t WHERE lk.id = v.run_id AND s.run_id = v.run_id"
    " AND s.key = v.key AND s.status IN ('waiting', 'invoking') RETURNING s.run_id), "
    "dw AS (DELETE FROM waits w USING v WHERE w.run_id = v.run_id AND w.step_key = v.key), "
    "wk AS (UPDATE runs r SET status = 'queued',"
    " available_at = least(coalesce(r.available_at, t.now), t.now)"
    " FROM (SELECT DISTINCT run_id FROM res) p, t WHERE r.id = p.run_id"
    " AND r.status IN ('waiting', 'sleeping', 'queued') RETURNING r.id), "
    "nw AS (SELECT pg_notify(%(wake_channel)s, %(origin)s) FROM (SELECT 1 FROM wk LIMIT 1) x) "
    "SELECT (SELECT count(*) FROM res), (SELECT count(*) FROM wk), (SELECT count(*) FROM nw)"
)

# ---------------------------------------------------------------------- worker side

# Lease up to %(limit)s due runs in one statement: lock them (skipping rows other claimers
# hold), bump their token, and return each with its recorded steps (only for runs that had
# started before), plus the database time and when the next run comes due (the claimed runs'
# new lease expiry, or the first run after the last one claimed, in due order). A run that
# was 'running' (its lease expired) counts a crash.
CLAIM: Final = (
    "WITH " + _T + ", "
    "due AS (SELECT id, status, started_at, available_at FROM runs"
    " WHERE available_at <= "
    + _NOW
    + " AND function_id = ANY(%(fids)s::text[])"
    + UNPAUSED
    + " ORDER BY available_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED), "
    "claimed AS (UPDATE runs r SET status = 'running', lease_token = r.lease_token + 1,"
    " lease_owner = %(worker)s, available_at = t.now + %(lease)s::float8, gate_key = NULL,"
    " started_at = coalesce(r.started_at, t.now),"
    " crashes = r.crashes + CASE WHEN due.status = 'running' THEN 1 ELSE 0 END"
    " FROM due, t WHERE r.id = due.id"
    " RETURNING r.id, r.function_id, r.lease_token, r.input, r.attempt, r.crashes,"
    " due.started_at AS prev_started, due.status AS prev_status, due.available_at AS due_at,"
    " r.available_at AS until, r.replay_of IS NOT NULL AS replayed), "
    "nxt AS (SELECT least("
    "(SELECT min(available_at) FROM runs WHERE available_at IS NOT NULL"
    " AND function_id = ANY(%(fids)s::text[])" + UNPAUSED + " AND (available_at, id) > ("
    "SELECT d.available_at, d.id FROM due d UNION ALL SELECT '-infinity'::float8, ''"
    " ORDER BY 1 DESC, 2 DESC LIMIT 1)),"
    " (SELECT min(until) FROM claimed)) AS next_due) "
    "SELECT t.now, nxt.next_due, c.id, c.function_id, c.lease_token, c.input, c.attempt,"
    " c.crashes, c.due_at, s.keys, s.seqs, s.kinds, s.statuses, s.outputs, s.errors,"
    " s.attempts, s.wake_ats, s.started_ats, s.ended_ats, s.names,"
    " c.prev_started IS NULL, c.prev_status = 'running' "
    "FROM t CROSS JOIN nxt LEFT JOIN claimed c ON true "
    "LEFT JOIN LATERAL (SELECT array_agg(st.key) AS keys, array_agg(st.seq) AS seqs,"
    " array_agg(st.kind) AS kinds, array_agg(st.status) AS statuses,"
    " array_agg(st.output) AS outputs, array_agg(st.error) AS errors,"
    " array_agg(st.attempts) AS attempts, array_agg(st.wake_at) AS wake_ats,"
    " array_agg(st.started_at) AS started_ats, array_agg(st.ended_at) AS ended_ats,"
    " array_agg(st.name) AS names"
    " FROM steps st WHERE (c.prev_started IS NOT NULL OR c.replayed) AND st.run_id = c.id)"
    " s ON true"
)
NEXT_DUE: Final = (
    "SELECT min(available_at) FROM runs "
    "WHERE available_at IS NOT NULL AND function_id = ANY(%(fids)s::text[])" + UNPAUSED
)

_LOCK_RUNS: Final = (
    "lk AS (SELECT id, lease_token, status FROM runs WHERE id = ANY(%(lock_ids)s::text[])"
    " ORDER BY id FOR NO KEY UPDATE), "
)
_LOCK_RUNS_AND_PARENTS: Final = (
    "lk AS (SELECT id, lease_token, status FROM runs WHERE id = ANY(%(lock_ids)s::text[]"
    " || ARRAY(SELECT parent_run_id FROM runs WHERE id = ANY(%(ending)s::text[])"
    " AND parent_run_id IS NOT NULL)) ORDER BY id FOR NO KEY UPDATE), "
)
_UPSERT_STEPS: Final = (
    "live AS (SELECT id, lease_token FROM lk WHERE status = 'running'), "
    "sw AS (INSERT INTO steps (run_id, key, seq, kind, status, output, error, attempts,"
    " wake_at, started_at, ended_at, name, input)"
    " SELECT w.run_id, w.key, w.seq, w.kind, w.status, w.output, w.error, w.attempts,"
    " w.wake_at, coalesce(nullif(w.started_at, 0), t.now), CASE WHEN w.done THEN t.now END,"
    " w.name, w.input"
    " FROM json_to_recordset(%(steps)s::json) AS w(run_id text, token int8, key text,"
    " seq int4, kind text, status text, output text, error text, attempts int4,"
    " wake_at float8, started_at float8, done bool, name text, input text), live, t"
    " WHERE live.id = w.run_id AND live.lease_token = w.token"
    " ON CONFLICT (run_id, key) DO UPDATE SET status = excluded.status,"
    " output = excluded.output, error = excluded.error, attempts = excluded.attempts,"
    " wake_at = excluded.wake_at, ended_at = excluded.ended_at,"
    " name = coalesce(excluded.name, steps.name),"
    " input = coalesce(excluded.input, steps.input))"
)
_WAITS_AND_CHILDREN: Final = (
    ", wi AS (INSERT INTO waits (run_id, step_key, event_name, match_path, match_value,"
    " expression, expires_at, created_at)"
    " SELECT v.run_id, v.key, v.event_name, v.match_path, v.match_value, v.expression,"
    " v.expires_at, t.now"
    " FROM json_to_recordset(%(waits)s::json) AS v(run_id text, token int8, key text,"
    " event_name text, match_path text, match_value text, expression text,"
    " expires_at float8), live, t"
    " WHERE live.id = v.run_id AND live.lease_token = v.token"
    " ON CONFLICT (run_id, step_key) DO UPDATE SET event_name = excluded.event_name,"
    " match_path = excluded.match_path, match_value = excluded.match_value,"
    " expression = excluded.expression, expires_at = excluded.expires_at,"
    " created_at = excluded.created_at), "
    "ch AS (INSERT INTO runs (id, function_id, status, input, event_id, idempotency_key,"
    " parent_run_id, parent_step, available_at, created_at, priority, concurrency_key,"
    " concurrency_key2, throttle_key, start_by)"
    " SELECT c.id, c.function_id, 'queued', c.input, c.event_id, c.idempotency_key,"
    " c.parent_run_id, c.parent_step, t.now - c.priority, t.now, c.priority, c.ck1, c.ck2,"
    " c.throttle_key, t.now + c.start_timeout"
    " FROM json_to_recordset(%(children)s::json) AS c(fence_run text, token int8, id text,"
    " function_id text, input text, event_id text, idempotency_key text,"
    " parent_run_id text, parent_step text, priority int4, ck1 text, ck2 text,"
    " throttle_key text, start_timeout float8), live, t"
    " WHERE live.id = c.fence_run AND live.lease_token = c.token"
    " ON CONFLICT (function_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
    " RETURNING id), "
    "nt AS (SELECT pg_notify(%(wake_channel)s, %(origin)s) FROM (SELECT 1 FROM ch LIMIT 1) x) "
    "SELECT lk.id, lk.lease_token, lk.status, (SELECT count(*) FROM ch),"
    " (SELECT count(*) FROM nt) FROM lk"
)


def _commit_steps(parents: bool, extras: bool) -> LiteralString:
    lock = _LOCK_RUNS_AND_PARENTS if parents else _LOCK_RUNS
    tail = (
        _WAITS_AND_CHILDREN if extras else " SELECT lk.id, lk.lease_token, lk.status, 0, 0 FROM lk"
    )
    return "WITH " + _T + ", " + lock + _UPSERT_STEPS + tail


# The first statement of every commit: lock the batch's runs (and, when it ends runs, their
# parents) in id order, then apply the step checkpoints (and the event waits and invoked
# children, when there are some) whose lease token matches. Returns every locked run with its
# token and status (the fence), and whether children were created. Keyed by (ends runs, has
# waits or children): the common checkpoint is the leanest statement.
COMMIT_STEPS: Final[dict[tuple[bool, bool], LiteralString]] = {
    (p, x): _commit_steps(p, x) for p in (False, True) for x in (False, True)
}

# Complete or fail runs (fenced), drop their waits, resolve their parents' invoke steps and
# wake the parents; announce the finished runs in notifications of < 8000 bytes.
COMMIT_END: Final = (
    "WITH " + _T + ", "
    "o AS (SELECT * FROM json_to_recordset(%(ends)s::json) AS o(run_id text, token int8,"
    " status text, output text, error text)), "
    "done AS (UPDATE runs r SET status = o.status, output = o.output, error = o.error,"
    " available_at = NULL, lease_owner = NULL, ended_at = t.now FROM o, t"
    " WHERE r.id = o.run_id AND r.lease_token = o.token AND r.status = 'running'"
    " RETURNING r.id, r.parent_run_id, r.parent_step, r.status, r.output, r.error,"
    " (left(r.concurrency_key, 2) = 'e:' OR left(r.concurrency_key2, 2) = 'e:') AS gated), "
    "dw AS (DELETE FROM waits w USING done WHERE w.run_id = done.id), "
    "res AS (UPDATE steps s SET status = done.status,"
    " output = CASE WHEN done.status = 'completed' THEN coalesce(nullif(done.output, ''),"
    " 'null') END,"
    " error = CASE WHEN done.status = 'failed' THEN done.error END, ended_at = t.now"
    " FROM done, t WHERE s.run_id = done.parent_run_id AND s.key = done.parent_step"
    " AND s.status IN ('waiting', 'invoking') RETURNING s.run_id), "
    "wk AS (UPDATE runs r SET status = 'queued',"
    " available_at = least(coalesce(r.available_at, t.now), t.now)"
    " FROM (SELECT DISTINCT run_id FROM res) p, t WHERE r.id = p.run_id"
    " AND r.status IN ('waiting', 'sleeping', 'queued') RETURNING r.id), "
    "nw AS (SELECT pg_notify(%(wake_channel)s, %(origin)s) FROM (SELECT 1 FROM wk"
    " UNION ALL SELECT 1 FROM done WHERE done.gated LIMIT 1) x), "
    "nf AS (SELECT pg_notify(%(done_channel)s, %(origin)s || ':' || string_agg(id, ','))"
    " FROM (SELECT id, sum(length(id) + 1) OVER (ORDER BY id) / 7000 AS chunk FROM done) d"
    " GROUP BY chunk) "
    "SELECT ARRAY(SELECT id FROM done), (SELECT count(*) FROM wk),"
    " (SELECT count(*) FROM nw), (SELECT count(*) FROM nf)"
)

COMMIT_RETRY: Final = (
    "WITH up AS (UPDATE runs r SET status = 'queued', error = o.error,"
    " attempt = r.attempt + 1, available_at = o.available_at, lease_owner = NULL "
    "FROM json_to_recordset(%(retries)s::json) AS o(run_id text, token int8, error text,"
    " available_at float8) "
    "WHERE r.id = o.run_id AND r.lease_token = o.token AND r.status = 'running'"
    " RETURNING (left(r.concurrency_key, 2) = 'e:'"
    " OR left(r.concurrency_key2, 2) = 'e:') AS gated), "
    "nw AS (SELECT pg_notify(%(wake_channel)s, %(origin)s)"
    " FROM (SELECT 1 FROM up WHERE gated LIMIT 1) x) "
    "SELECT (SELECT count(*) FROM nw)"
)

# Suspend or release runs (fenced). A suspension is due at once when one of its watched steps
# (waits, invokes) was resolved meanwhile; a run due now is 'queued' and announced.
COMMIT_SUSPEND: Final = (
    "WITH " + _T + ", "
    "o AS (SELECT * FROM json_to_recordset(%(suspends)s::json) AS o(run_id text, token int8,"
    " available float8, status text, release bool)), "
    "wr AS (SELECT DISTINCT s.run_id FROM steps s, json_to_recordset(%(watched)s::json)"
    " AS k(run_id text, key text) WHERE s.run_id = k.run_id AND s.key = k.key"
    " AND s.status IN ('completed', 'failed')), "
    "v AS (SELECT o.run_id, o.token, o.status, CASE WHEN o.release OR wr.run_id IS NOT NULL"
    " THEN t.now ELSE o.available END AS available FROM o CROSS JOIN t"
    " LEFT JOIN wr ON wr.run_id = o.run_id), "
    "up AS (UPDATE runs r SET status = CASE WHEN v.available <= t.now THEN 'queued'"
    " ELSE v.status END, available_at = v.available, lease_owner = NULL FROM v, t"
    " WHERE r.id = v.run_id AND r.lease_token = v.token AND r.status = 'running'"
    " RETURNING coalesce(v.available <= t.now, false) AS due,"
    " (left(r.concurrency_key, 2) = 'e:' OR left(r.concurrency_key2, 2) = 'e:') AS gated), "
    "nw AS (SELECT pg_notify(%(wake_channel)s, %(origin)s)"
    " FROM (SELECT 1 FROM up WHERE due OR gated LIMIT 1) x) "
    "SELECT (SELECT count(*) FROM up WHERE due), (SELECT count(*) FROM nw)"
)

HEARTBEAT: Final = (
    "WITH lk AS (SELECT r.id FROM runs r, unnest(%(ids)s::text[], %(tokens)s::int8[])"
    " AS l(id, token) WHERE r.id = l.id AND r.lease_token = l.token AND r.status = 'running'"
    " ORDER BY r.id FOR NO KEY UPDATE OF r), "
    "up AS (UPDATE runs r SET available_at = " + _NOW + " + %(lease)s::float8 FROM lk"
    " WHERE r.id = lk.id RETURNING r.id) "
    "SELECT " + _NOW + ", ARRAY(SELECT id FROM up)"
)

EXPIRE_LOCK: Final = (
    "SELECT id FROM runs WHERE id = %(run)s AND lease_token = %(token)s"
    " AND status = 'running' FOR NO KEY UPDATE"
)
# Time out a waiting step (completed with null) or an invoking one (failed), unless it was
# resolved meanwhile; return the step as now recorded. Runs after EXPIRE_LOCK, in its
# transaction, so that it sees every resolution committed before the lock was granted.
EXPIRE_APPLY: Final = (
    "WITH " + _T + ", "
    "f AS (SELECT id FROM runs WHERE id = %(run)s AND lease_token = %(token)s"
    " AND status = 'running'), "
    "upd AS (UPDATE steps s SET"
    " status = CASE WHEN s.status = 'waiting' THEN 'completed' ELSE 'failed' END,"
    " output = CASE WHEN s.status = 'waiting' THEN 'null' END,"
    " error = CASE WHEN s.status = 'waiting' THEN NULL ELSE %(error)s END, ended_at = t.now"
    " FROM f, t WHERE s.run_id = f.id AND s.key = %(key)s"
    " AND s.status IN ('waiting', 'invoking')"
    " RETURNING s.key, s.seq, s.kind, s.status, s.output, s.error, s.attempts, s.wake_at,"
    " s.started_at, s.ended_at, s.name), "
    "dw AS (DELETE FROM waits w USING upd WHERE w.run_id = %(run)s AND w.step_key = upd.key"
    " AND upd.status = 'completed') "
    "SELECT * FROM upd UNION ALL "
    "SELECT s.key, s.seq, s.kind, s.status, s.output, s.error, s.attempts, s.wake_at,"
    " s.started_at, s.ended_at, s.name FROM steps s, f WHERE s.run_id = f.id"
    " AND s.key = %(key)s"
    " AND NOT EXISTS (SELECT 1 FROM upd)"
)

# ---------------------------------------------------------------------- cron, maintenance

CRON_LAST: Final = (
    "SELECT last_tick FROM cron_ticks WHERE function_id = %(fid)s AND trigger = %(trigger)s"
)
# FIRE_CRON (firing a decorator cron trigger's tick) is in schedule_queries.py.

# Pruning (runs in bounded batches, events, event ids) is in ops_queries.py.

# ---------------------------------------------------------------------- batches of one
#
# The common sequential commits, one op (or the last checkpoint and the outcome of one run)
# with scalar parameters: the same semantics as the batch statements above, without the JSON
# recordsets and the batch joins (measured: about half their server time).

_STEP_COLUMNS_IN: Final = (
    "INSERT INTO steps (run_id, key, seq, kind, status, output, error, attempts,"
    " wake_at, started_at, ended_at, name, input)"
)
_STEP_VALUES: Final = (
    " %(key)s::text, %(seq)s::int4, %(kind)s::text, %(status)s::text, %(output)s::text,"
    " %(error)s::text, %(attempts)s::int4, %(wake_at)s::float8,"
    " coalesce(nullif(%(started_at)s::float8, 0), t.now),"
    " CASE WHEN %(done)s::bool THEN t.now END, %(name)s::text, %(input)s::text"
)
_STEP_CONFLICT: Final = (
    " ON CONFLICT (run_id, key) DO UPDATE SET status = excluded.status,"
    " output = excluded.output, error = excluded.error, attempts = excluded.attempts,"
    " wake_at = excluded.wake_at, ended_at = excluded.ended_at,"
    " name = coalesce(excluded.name, steps.name),"
    " input = coalesce(excluded.input, steps.input)"
)

# One step checkpoint without wait or child: lock the run's row, write the step if the lease
# token matches and the run is running. Returns the locked row's token and status (the fence).
STEP_ONE: Final = (
    "WITH " + _T + ", "
    "lk AS (SELECT id, lease_token, status FROM runs WHERE id = %(run)s::text"
    " FOR NO KEY UPDATE), "
    "sw AS (" + _STEP_COLUMNS_IN + " SELECT lk.id," + _STEP_VALUES + " FROM lk, t"
    " WHERE lk.lease_token = %(token)s::int8 AND lk.status = 'running'" + _STEP_CONFLICT + ") "
    "SELECT lk.lease_token, lk.status FROM lk"
)

# Complete or fail one run (fenced by its token and status running).
_END_ONE: Final = (
    "done AS (UPDATE runs SET status = %(end_status)s::text, output = %(end_output)s::text,"
    " error = %(end_error)s::text, available_at = NULL, lease_owner = NULL, ended_at = t.now"
    " FROM t WHERE id = %(run)s::text AND lease_token = %(token)s::int8"
    " AND status = 'running'"
    " RETURNING runs.id, runs.parent_run_id, runs.parent_step, runs.status, runs.output,"
    " runs.error, (left(runs.concurrency_key, 2) = 'e:' OR left(runs.concurrency_key2, 2) = 'e:')"
    " AS gated), "
)
# What follows the end of one run: drop its waits; when it has a parent, lock the parent's row,
# resolve its invoke step and wake it; announce the finished run. Every part is an index probe
# that finds nothing when the run has no parent and no wait.
_END_ONE_TAIL: Final = (
    "dw AS (DELETE FROM waits WHERE run_id = (SELECT id FROM done)), "
    "pl AS (SELECT r.id FROM runs r, done WHERE r.id = done.parent_run_id"
    " FOR NO KEY UPDATE OF r), "
    "res AS (UPDATE steps s SET status = done.status,"
    " output = CASE WHEN done.status = 'completed' THEN coalesce(nullif(done.output, ''),"
    " 'null') END,"
    " error = CASE WHEN done.status = 'failed' THEN done.error END, ended_at = t.now"
    " FROM done, pl, t WHERE s.run_id = pl.id AND s.key = done.parent_step"
    " AND s.status IN ('waiting', 'invoking') RETURNING s.run_id), "
    "wk AS (UPDATE runs r SET status = 'queued',"
    " available_at = least(coalesce(r.available_at, t.now), t.now)"
    " FROM res, t WHERE r.id = res.run_id"
    " AND r.status IN ('waiting', 'sleeping', 'queued') RETURNING r.id), "
    "nw AS (SELECT pg_notify(%(wake_channel)s, %(origin)s)"
    " FROM (SELECT 1 FROM wk UNION ALL SELECT 1 FROM done WHERE done.gated LIMIT 1) x), "
    "nf AS (SELECT pg_notify(%(done_channel)s, %(origin)s || ':' || id) FROM done) "
    "SELECT (SELECT id FROM done), (SELECT count(*) FROM wk), (SELECT count(*) FROM nw),"
    " (SELECT count(*) FROM nf)"
)
END_ONE: Final = "WITH " + _T + ", " + _END_ONE + _END_ONE_TAIL

# The last step checkpoint and the outcome of one run in one statement: the step is written
# only if the outcome's fenced UPDATE matched (it reads the UPDATE's RETURNING).
STEP_END_ONE: Final = (
    "WITH "
    + _T
    + ", "
    + _END_ONE
    + "sw AS ("
    + _STEP_COLUMNS_IN
    + " SELECT done.id,"
    + _STEP_VALUES
    + " FROM done, t"
    + _STEP_CONFLICT
    + "), "
    + _END_ONE_TAIL
)

# Create one run without idempotency key, due now (or already leased to %(owner)s: running,
# token 1). Returns its lease token (0 when queued) and whether it was announced.
CREATE_ONE: Final = (
    "WITH " + _T + ", "
    "o AS (SELECT CASE WHEN %(owner)s::text IS NULL THEN NULL WHEN EXISTS (SELECT 1 FROM"
    " function_pauses WHERE function_id = %(fid)s::text) THEN NULL ELSE %(owner)s::text END"
    " AS owner), "
    "ins AS (INSERT INTO runs (id, function_id, status, input, event_id, idempotency_key,"
    " parent_run_id, parent_step, available_at, created_at, lease_owner,"
    " lease_token, started_at)"
    " SELECT %(id)s::text, %(fid)s::text,"
    " CASE WHEN o.owner IS NULL THEN 'queued' ELSE 'running' END, %(input)s::text,"
    " %(event_id)s::text, NULL, %(parent)s::text, %(parent_step)s::text,"
    " t.now + CASE WHEN o.owner IS NULL THEN 0 ELSE %(lease)s::float8 END, t.now,"
    " o.owner, CASE WHEN o.owner IS NULL THEN 0 ELSE 1 END,"
    " CASE WHEN o.owner IS NOT NULL THEN t.now END FROM t, o"
    " RETURNING lease_token), "
    "nt AS (SELECT pg_notify(%(wake_channel)s, %(origin)s) FROM ins WHERE lease_token = 0) "
    "SELECT lease_token, (SELECT count(*) FROM nt) FROM ins"
)

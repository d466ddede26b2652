-- perdure schema for PostgreSQL: the trace context of a run's attempts (the W3C traceparent
-- of its first and of its latest attempt span, JSON; see perdure.runtime.tracing).
ALTER TABLE runs ADD COLUMN trace text;

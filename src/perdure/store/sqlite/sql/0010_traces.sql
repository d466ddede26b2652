-- perdure schema for SQLite: the trace context of a run's attempts (the W3C traceparent of
-- its first and of its latest attempt span, JSON; see perdure.runtime.tracing).
ALTER TABLE runs ADD COLUMN trace TEXT;

-- perdure schema for PostgreSQL: cancel_on and timeouts (docs/flow-control.md).

-- cancel_on: the runs of a function that have not ended, by creation time (an arriving event
-- looks at the runs of the functions it may cancel, inside the option's window).
CREATE INDEX runs_active_by_function ON runs (function_id, created_at)
    WHERE status IN ('queued', 'running', 'sleeping', 'waiting');
-- timeouts: runs that have not started, by start deadline; runs not ended, by finish deadline
-- (the deadline sweeper reads the earliest and cancels the overdue ones).
CREATE INDEX runs_start_by ON runs (start_by)
    WHERE start_by IS NOT NULL AND started_at IS NULL AND status = 'queued';
CREATE INDEX runs_finish_by ON runs (finish_by)
    WHERE finish_by IS NOT NULL AND status IN ('queued', 'running', 'sleeping', 'waiting');

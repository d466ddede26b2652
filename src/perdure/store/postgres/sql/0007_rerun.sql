-- perdure schema for PostgreSQL: reruns and replays (a run started again from another one
-- records which; a replay also records the step it executes from).
ALTER TABLE runs ADD COLUMN rerun_of text COLLATE "C";
ALTER TABLE runs ADD COLUMN replay_of text COLLATE "C";
ALTER TABLE runs ADD COLUMN replay_from_step text COLLATE "C";

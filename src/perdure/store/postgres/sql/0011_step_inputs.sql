-- perdure schema for PostgreSQL: what each step was given (a run step's arguments, an invoke's
-- data, the events of a send, a wait's event and match), JSON text, shown by the API and the
-- dashboard; claims do not read it.
ALTER TABLE steps ADD COLUMN input text;

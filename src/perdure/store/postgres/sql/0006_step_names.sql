-- perdure schema for PostgreSQL: step names (an Inngest SDK step's key is the SHA-1 of its id;
-- the id as the user wrote it is kept beside it, for trace spans and the API).
ALTER TABLE steps ADD COLUMN name text;

-- Schema version 8 (PostgreSQL): a run's note; the same column as
-- sqlite/0008_run_note.sql in PostgreSQL's types.

ALTER TABLE runs ADD COLUMN note TEXT NOT NULL DEFAULT '';

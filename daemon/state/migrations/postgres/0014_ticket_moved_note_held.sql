-- Schema version 14 (PostgreSQL): the same columns as
-- sqlite/0014_ticket_moved_note_held.sql in PostgreSQL's types.

ALTER TABLE tickets ADD COLUMN moved_note TEXT;
ALTER TABLE tickets ADD COLUMN held_since TIMESTAMPTZ;

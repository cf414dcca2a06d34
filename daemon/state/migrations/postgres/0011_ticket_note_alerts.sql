-- Schema version 11 (PostgreSQL): the same columns as
-- sqlite/0011_ticket_note_alerts.sql in PostgreSQL's types.

ALTER TABLE tickets ADD COLUMN note_alerts TEXT;
ALTER TABLE tickets ADD COLUMN reopen_activity TIMESTAMPTZ;

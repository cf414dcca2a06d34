-- Schema version 5 (PostgreSQL): the same column as
-- sqlite/0005_ticket_instance.sql.

ALTER TABLE tickets ADD COLUMN instance TEXT NOT NULL DEFAULT '';

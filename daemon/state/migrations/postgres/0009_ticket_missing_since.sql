-- Schema version 9 (PostgreSQL): when the alert of a followed ticket was
-- first left out of a complete listing; the same column as
-- sqlite/0009_ticket_missing_since.sql in PostgreSQL's types.

ALTER TABLE tickets ADD COLUMN missing_since TIMESTAMPTZ;

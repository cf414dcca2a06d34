-- Schema version 5 (SQLite): the PSA instance of each ticket record
-- (tickets.Record.Instance, as psa.instance in the export), so that the
-- ticket engine never follows a record of another PSA instance by its bare
-- ticket id. Records written before have none; the engine takes them as
-- its own when their system is its system, and records its instance in
-- them when it next writes them.
-- postgres/0005_ticket_instance.sql is the same column.

ALTER TABLE tickets ADD COLUMN instance TEXT NOT NULL DEFAULT '';

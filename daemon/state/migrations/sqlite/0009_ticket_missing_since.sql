-- Schema version 9 (SQLite): when the alert of a followed ticket was first
-- left out of a complete listing of its tenant's open alerts
-- (tickets.Record.MissingSince). The ticket engine resolves the ticket
-- only when a listing at least policies.ticket_resolve_after later still
-- leaves the alert out, so that an alert missing from one listing (a
-- listing glitch) and back in the next keeps its ticket instead of getting
-- a second one. NULL: not missing. Records written before have none.
-- postgres/0009_ticket_missing_since.sql is the same column.

ALTER TABLE tickets ADD COLUMN missing_since TEXT;

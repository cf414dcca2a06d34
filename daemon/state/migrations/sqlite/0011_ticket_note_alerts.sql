-- Schema version 11 (SQLite): two columns of ticket records for writes
-- whose answer may be lost, so that a later pass can tell whether they
-- were applied instead of guessing.
-- note_alerts: the alert ids (a JSON array) of a "More alerts" note on a
-- customer's summary ticket whose outcome is unknown
-- (tickets.Record.NoteAlerts): the next pass looks for the note on the
-- ticket and sends it again only when it is not there. NULL: none.
-- reopen_activity: the ticket's last change in the PSA, on the PSA's
-- clock, as read just before a reopen's intent was recorded
-- (tickets.Record.ReopenActivity): a reopen found unsettled and the ticket
-- closed and unchanged since that time was not applied. NULL: not read.
-- postgres/0011_ticket_note_alerts.sql is the same columns.

ALTER TABLE tickets ADD COLUMN note_alerts TEXT;
ALTER TABLE tickets ADD COLUMN reopen_activity TEXT;

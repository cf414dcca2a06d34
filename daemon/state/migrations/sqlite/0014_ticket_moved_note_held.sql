-- Schema version 14 (SQLite): two columns of ticket records.
-- moved_note: on the record of a summary ticket a customer's mapping moved
-- away from (tickets.Record.MovedNote), the reference of the new summary
-- ticket that its "Customer moved" note is to name, set when the move is
-- recorded (before the new summary's create) and cleared once the note is
-- added: a crash between the create and the note, or a lost answer, leaves
-- the next pass to look for the note and send it only when it is not
-- there. NULL: no note owed.
-- held_since: when a ticket create whose outcome is unknown was first held
-- for an operator (tickets.Record.HeldSince): its search by reference
-- found nothing and could not be checked, so it is not sent again until
-- the search finds it or an operator runs psa-syncd resolve -ticket REF
-- -not-posted. NULL: not held (still within settle_time, or settled).
-- postgres/0014_ticket_moved_note_held.sql is the same columns.

ALTER TABLE tickets ADD COLUMN moved_note TEXT;
ALTER TABLE tickets ADD COLUMN held_since TEXT;

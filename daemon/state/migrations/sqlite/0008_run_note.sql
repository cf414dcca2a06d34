-- Schema version 8 (SQLite): a run's note. A run that records what an
-- operator did by hand instead of a pass (psa-syncd set-by-hand: the
-- quantities of the month that has ended, set in the PSA by hand) carries
-- the operator's note, who did what; a pass's note is empty.
-- postgres/0008_run_note.sql is the same column in PostgreSQL's types.

ALTER TABLE runs ADD COLUMN note TEXT NOT NULL DEFAULT '';

-- Schema version 13 (PostgreSQL): no change of the schema. The snapshots
-- that an older psa-syncd stored (the last plan's line reasons, customer
-- failures and writes_held, in its compressed columns, and the strings of
-- the other snapshots) may name the state database (the SQLite file, or
-- the PostgreSQL database, host and port, and pgx's user= and database= of
-- a failed connection), which the API and the status page serve without
-- the API token. Migration 12 rewrote the errors of runs, customer
-- statuses, intents and ticket records but not the snapshots, and a
-- database it migrated is not migrated again: the migration's step in Go,
-- rewriteSnapshotTexts (migrate.go), rewrites the snapshots' strings with
-- state.PublicRecordedText, as PublicText words them now. A string that is
-- already public is unchanged, so a snapshot a newer pass wrote is kept.
-- sqlite/0013_public_snapshots.sql is the same.

SELECT 1;

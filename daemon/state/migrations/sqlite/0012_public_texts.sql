-- Schema version 12 (SQLite): no change of the schema. The errors that an
-- older psa-syncd recorded with runs, customer statuses, intents and ticket
-- records may name the state database (the SQLite file, or the PostgreSQL
-- database, host and port, and pgx's user= and database= of a failed
-- connection), which the API and the status page serve without the API
-- token. The migration's step in Go, rewriteRecordedTexts (migrate.go),
-- rewrites them with state.PublicRecordedText, as PublicText words them
-- now, so that the database no longer holds them.
-- postgres/0012_public_texts.sql is the same.

SELECT 1;

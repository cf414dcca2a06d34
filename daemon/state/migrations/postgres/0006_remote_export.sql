-- Schema version 6 (PostgreSQL): the last good mapping export read from a
-- remote store (S3, another psa-syncd), one row per store, so that a
-- restart while the store cannot be read starts with the export that was
-- in use instead of none. store is a digest of the export URL (which may
-- hold credentials), version the store's ETag.
-- sqlite/0006_remote_export.sql is the same table.

CREATE TABLE remote_export (
	store   TEXT PRIMARY KEY,
	version TEXT NOT NULL,
	at      TIMESTAMPTZ,
	body    BYTEA NOT NULL
);

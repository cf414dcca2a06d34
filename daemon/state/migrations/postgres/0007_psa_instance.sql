-- Schema version 7 (PostgreSQL): for each PSA system, the instance whose
-- usage the database records; the same table as
-- sqlite/0007_psa_instance.sql in PostgreSQL's types.

CREATE TABLE psa_instance (
	system   TEXT COLLATE "C" PRIMARY KEY,
	instance TEXT NOT NULL,
	bound_at TIMESTAMPTZ NOT NULL
);

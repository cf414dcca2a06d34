-- Schema version 7 (SQLite): for each PSA system, the instance whose usage
-- the database records (the ledger, intents and contract checks of a
-- system match contracts and services by id alone, which another tenant
-- of the same system shares, such as an Autotask sandbox and the
-- production tenant it was copied from). The first usage pass of a system
-- that writes records the instance it is connected to, and the usage
-- engine refuses passes connected to another (DB.BindInstance). A
-- database migrated from an older version has none until that pass, which
-- adopts its instance.
-- postgres/0007_psa_instance.sql is the same table in PostgreSQL's types.

CREATE TABLE psa_instance (
	system   TEXT PRIMARY KEY,
	instance TEXT NOT NULL,
	bound_at TEXT NOT NULL
);

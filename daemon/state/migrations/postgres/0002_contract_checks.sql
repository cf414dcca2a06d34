-- Schema version 2 (PostgreSQL): the same table as
-- sqlite/0002_contract_checks.sql.

CREATE TABLE contract_checks (
	system      TEXT COLLATE "C" NOT NULL,
	contract_id TEXT COLLATE "C" NOT NULL,
	company_id  TEXT NOT NULL DEFAULT '',
	status      TEXT NOT NULL DEFAULT '',
	type        TEXT NOT NULL DEFAULT '',
	active      BOOLEAN NOT NULL DEFAULT FALSE,
	recurring   BOOLEAN NOT NULL DEFAULT FALSE,
	checked_at  TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (system, contract_id)
);

-- Schema version 2 (SQLite): the contracts a usage pass verified before
-- writing to them (that they exist, belong to the company, are active and
-- recurring), so that later passes verify them again only when the check
-- is old or the customer mapping names another company.
-- postgres/0002_contract_checks.sql is the same table in PostgreSQL's types.

CREATE TABLE contract_checks (
	system      TEXT NOT NULL,
	contract_id TEXT NOT NULL,
	company_id  TEXT NOT NULL DEFAULT '',
	status      TEXT NOT NULL DEFAULT '',
	type        TEXT NOT NULL DEFAULT '',
	active      INTEGER NOT NULL DEFAULT 0,
	recurring   INTEGER NOT NULL DEFAULT 0,
	checked_at  TEXT NOT NULL,
	PRIMARY KEY (system, contract_id)
);

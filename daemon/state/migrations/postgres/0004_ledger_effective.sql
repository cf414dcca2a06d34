-- Schema version 4 (PostgreSQL): the same index as
-- sqlite/0004_ledger_effective.sql.

CREATE INDEX ledger_effective ON ledger (effective_date);

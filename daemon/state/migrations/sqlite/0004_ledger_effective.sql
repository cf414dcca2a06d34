-- Schema version 4 (SQLite): an index of the ledger by effective date, for
-- the pass's look for changes psa-syncd dated after its own effective date
-- (usage.Engine.laterWrites), which otherwise reads the whole ledger.
-- postgres/0004_ledger_effective.sql is the same index.

CREATE INDEX ledger_effective ON ledger (effective_date);

-- Schema version 10 (SQLite): an index of the ledger by customer, for the
-- pass's look, before it adds a customer's line on its contract, for lines
-- psa-syncd set for that customer on another contract that may still bill
-- (usage.Engine.movedLine: a customer moved to another contract), which
-- otherwise reads the whole ledger.
-- postgres/0010_ledger_customer.sql is the same index.

CREATE INDEX ledger_customer ON ledger (customer_id);

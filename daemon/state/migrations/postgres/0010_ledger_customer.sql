-- Schema version 10 (PostgreSQL): the same index as
-- sqlite/0010_ledger_customer.sql.

CREATE INDEX ledger_customer ON ledger (customer_id);

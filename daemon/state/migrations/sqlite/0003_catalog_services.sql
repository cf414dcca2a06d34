-- Schema version 3 (SQLite): what the writes of a usage pass copy of the
-- catalog services they write (Kaseya BMS: a new contract line carries the
-- service's name, description, price and cost), with the time it was read,
-- so that a pass in another process within the backend's time to live
-- (10 minutes for Kaseya BMS) does not read the services again. One row per
-- service, replaced at each read. postgres/0003_catalog_services.sql is the
-- same table in PostgreSQL's types.

CREATE TABLE catalog_services (
	system      TEXT NOT NULL,
	service_id  TEXT NOT NULL,
	name        TEXT NOT NULL DEFAULT '',
	description TEXT NOT NULL DEFAULT '',
	unit_price  REAL NOT NULL DEFAULT 0,
	unit_cost   REAL NOT NULL DEFAULT 0,
	read_at     TEXT NOT NULL,
	PRIMARY KEY (system, service_id)
);

-- Schema version 3 (PostgreSQL): the same table as
-- sqlite/0003_catalog_services.sql.

CREATE TABLE catalog_services (
	system      TEXT COLLATE "C" NOT NULL,
	service_id  TEXT COLLATE "C" NOT NULL,
	name        TEXT NOT NULL DEFAULT '',
	description TEXT NOT NULL DEFAULT '',
	unit_price  DOUBLE PRECISION NOT NULL DEFAULT 0,
	unit_cost   DOUBLE PRECISION NOT NULL DEFAULT 0,
	read_at     TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (system, service_id)
);

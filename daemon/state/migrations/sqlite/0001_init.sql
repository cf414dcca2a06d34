-- psa-syncd state, schema version 1 (SQLite). Times are UTC text in the
-- fixed-width form 2006-01-02T15:04:05.000000Z, so they sort as strings.
-- postgres/0001_init.sql is the same schema in PostgreSQL's types.

CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);

CREATE TABLE customers (
	source        TEXT NOT NULL,
	customer_id   TEXT NOT NULL,
	customer_name TEXT NOT NULL DEFAULT '',
	company_id    TEXT NOT NULL DEFAULT '',
	contract_id   TEXT NOT NULL DEFAULT '',
	usage_sync    INTEGER NOT NULL DEFAULT 0,
	ticket_sync   INTEGER NOT NULL DEFAULT 0,
	last_attempt  TEXT,
	last_success  TEXT,
	result        TEXT NOT NULL DEFAULT '',
	error         TEXT NOT NULL DEFAULT '',
	hint          TEXT NOT NULL DEFAULT '',
	run_id        TEXT NOT NULL DEFAULT '',
	updated       INTEGER NOT NULL DEFAULT 0,
	unchanged     INTEGER NOT NULL DEFAULT 0,
	held          INTEGER NOT NULL DEFAULT 0,
	failed        INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (source, customer_id)
);

CREATE TABLE runs (
	id        INTEGER PRIMARY KEY AUTOINCREMENT,
	trigger   TEXT NOT NULL DEFAULT '',
	dry_run   INTEGER NOT NULL DEFAULT 0,
	customer  TEXT NOT NULL DEFAULT '',
	started   TEXT,
	finished  TEXT,
	result    TEXT NOT NULL,
	error     TEXT NOT NULL DEFAULT '',
	updated   INTEGER NOT NULL DEFAULT 0,
	unchanged INTEGER NOT NULL DEFAULT 0,
	held      INTEGER NOT NULL DEFAULT 0,
	failed    INTEGER NOT NULL DEFAULT 0,
	requests  INTEGER NOT NULL DEFAULT 0,
	period    TEXT NOT NULL DEFAULT '',
	customers INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE intents (
	id             INTEGER PRIMARY KEY AUTOINCREMENT,
	run_id         INTEGER NOT NULL,
	system         TEXT NOT NULL,
	source         TEXT NOT NULL,
	customer_id    TEXT NOT NULL,
	contract_id    TEXT NOT NULL,
	service_id     TEXT NOT NULL,
	qty_before     INTEGER NOT NULL,
	qty_after      INTEGER NOT NULL,
	before_known   INTEGER NOT NULL,
	effective_date TEXT,
	created        TEXT,
	state          TEXT NOT NULL,
	note           TEXT NOT NULL DEFAULT ''
);
CREATE INDEX intents_open ON intents (id) WHERE state = 'open';

CREATE TABLE ledger (
	seq            INTEGER PRIMARY KEY AUTOINCREMENT,
	run_id         INTEGER NOT NULL,
	system         TEXT NOT NULL,
	source         TEXT NOT NULL,
	customer_id    TEXT NOT NULL,
	contract_id    TEXT NOT NULL,
	service_id     TEXT NOT NULL,
	qty_before     INTEGER NOT NULL,
	qty_after      INTEGER NOT NULL,
	effective_date TEXT,
	at             TEXT,
	intent_id      INTEGER NOT NULL
);
CREATE INDEX ledger_line ON ledger (contract_id, service_id, seq);

CREATE TABLE export_versions (
	revision INTEGER PRIMARY KEY,
	digest   TEXT NOT NULL,
	size     INTEGER NOT NULL,
	at       TEXT,
	source   TEXT NOT NULL DEFAULT '',
	body     BLOB NOT NULL
);

CREATE TABLE leader (
	id     INTEGER PRIMARY KEY CHECK (id = 1),
	holder TEXT NOT NULL,
	url    TEXT NOT NULL DEFAULT '',
	since  TEXT
);

-- The calls psa-syncd made to each endpoint of a PSA that limits calls per
-- endpoint (Kaseya BMS: 1,500 per rolling hour), so that every pass and
-- every process sharing the database knows what is left; and the endpoints
-- the PSA refused (429) until a given time.
CREATE TABLE api_calls (
	endpoint TEXT NOT NULL,
	at       TEXT NOT NULL
);
CREATE INDEX api_calls_endpoint_at ON api_calls (endpoint, at);

CREATE TABLE api_blocks (
	endpoint TEXT PRIMARY KEY,
	until    TEXT NOT NULL
);

-- Values the daemon keeps across restarts without a history (the unmapped
-- usage of the last pass, since when lines are held), as JSON by name.
CREATE TABLE snapshots (
	name  TEXT PRIMARY KEY,
	value TEXT NOT NULL
);

-- The ticket engine's records: one per alert (or summary) of a customer, so
-- that no ticket is created twice. A record in state 'creating' is an intent
-- whose create is not settled yet; covered is a JSON array of alert ids.
CREATE TABLE tickets (
	source       TEXT NOT NULL,
	customer_id  TEXT NOT NULL,
	alert_key    TEXT NOT NULL,
	ref          TEXT NOT NULL DEFAULT '',
	generation   INTEGER NOT NULL DEFAULT 0,
	system       TEXT NOT NULL DEFAULT '',
	company_id   TEXT NOT NULL DEFAULT '',
	ticket_id    TEXT NOT NULL DEFAULT '',
	number       TEXT NOT NULL DEFAULT '',
	state        TEXT NOT NULL,
	severity     TEXT NOT NULL DEFAULT '',
	title        TEXT NOT NULL DEFAULT '',
	covered      TEXT NOT NULL DEFAULT '[]',
	routing_hash TEXT NOT NULL DEFAULT '',
	error        TEXT NOT NULL DEFAULT '',
	closed_by    TEXT NOT NULL DEFAULT '',
	created      TEXT,
	updated      TEXT,
	closed_at    TEXT,
	PRIMARY KEY (source, customer_id, alert_key)
);
CREATE INDEX tickets_creating ON tickets (source, customer_id, alert_key) WHERE state = 'creating';

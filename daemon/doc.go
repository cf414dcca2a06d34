// Package daemon is the library behind psa-syncd, the usage sync daemon: it
// reads the mapping export that the Terraform provider writes, pulls usage
// from a vendor (package source), and sets the quantities of the mapped PSA
// contract lines. The binary in cmd/psa-syncd parses flags and calls into
// this package; the package itself never reads flags, environment variables
// or globals.
//
// The parts:
//
//   - Config (config.go): the YAML configuration file, decoded strictly and
//     validated by Load, with secrets from the file, a *_file or the
//     environment (in that order). Config.String redacts every secret.
//   - Metrics (metrics.go): every psa_sync_* collector on a caller-owned
//     registry, and InstrumentRoundTripper for the PSA's HTTP client.
//   - Engine (engine*.go): one sync pass. Plan computes the changes without
//     writing; Sync writes them and records the run, the customer statuses
//     and the metrics; Reconcile settles writes whose outcome is unknown.
//   - Daemon (daemon.go, server.go): reloads, the scheduler, the HTTP API.
//
// # A pass
//
// The billing period is the calendar month that contains the pass's time in
// the configured time zone. Usage rows are summed per (customer, product);
// the products mapped to one service add up to that service's quantity.
// Usage of a customer without a customer mapping, of a product without a
// product mapping, and usage that belongs to no customer is reported
// (Plan.Unmapped, psa_sync_unmapped) and never written anywhere. A product
// whose mapping has sync_enabled = false is "sync off", not unmapped: it is
// listed in Unmapped.SyncOff and its usage is ignored on purpose.
//
// For every customer with usage sync on, the current quantities of all
// involved contracts are read in bulk as of the effective date (the policy:
// the first day of the billing month, today, or the first day of the next
// month). A mapped line without usage this period is set to 0 or left alone
// (policies.missing_usage); when the source reports no usage at all, lines
// are left alone for that pass, because an empty month usually means the
// vendor has no data yet. A decrease larger than
// policies.max_decrease_percent is held for review until a pass runs with
// PassOptions.Approve. Only lines that differ are written, with bounded
// concurrency, and writing stops (the run ends as partial) when the PSA's
// hourly request budget falls to policies.budget_reserve.
//
// # Safety
//
// Every write is recorded as an intent in the state database before it is
// sent and closed after it, and the ledger gets the change in the same
// transaction. A write whose outcome is unknown (a lost answer, a crash, a
// kill) leaves its intent open; Reconcile, which Sync runs first, re-reads
// the line and closes the intent as done, failed or review. A line whose
// intent is still open is never written, so an Autotask adjustment is never
// posted twice. One customer's failure never stops the others; each
// customer's status carries the error and a hint for the fix.
//
// Dry runs (PassOptions.DryRun, or WritesDisabled when the export switches
// the integration off) compute everything and write nothing: they are
// recorded in the run history but change no customer status and no run
// metric, so a disabled integration never looks like a healthy one.
//
// # Example
//
//	cfg, err := daemon.Load("/etc/psa-syncd/psa-syncd.yml", os.Getenv)
//	if err != nil { ... }
//	reg := prometheus.NewRegistry()
//	m := daemon.NewMetrics(reg, cfg.PSA.System)
//	hc := &http.Client{Transport: m.InstrumentRoundTripper(nil), Timeout: time.Minute}
//	be, err := backends.New(cfg.BackendConfig(hc, logger))
//	if err != nil { ... }
//	src, err := cfg.NewSource(nil, logger)
//	if err != nil { ... }
//	db, err := state.Open(cfg.StateDir)
//	if err != nil { ... }
//	defer db.Close()
//	doc, err := export.NewStore(cfg.ExportPath).Read()
//	if err != nil { ... }
//	e := daemon.NewEngine(daemon.EngineOptions{
//		Backend: be, Source: src, State: db, Policies: cfg.Policies,
//		Metrics: m, Logger: logger, Location: cfg.Location(),
//	})
//	res, err := e.Sync(ctx, doc, daemon.PassOptions{Trigger: daemon.TriggerCLI})
//	if err != nil { ... }
//	fmt.Println(res.Run.Result, res.Run.Updated, "lines updated")
package daemon

// Package daemon is the library behind psa-syncd: it reads the mapping
// export that the Terraform provider writes and runs two jobs on it, usage
// sync (pull usage from a vendor, package source, and set the quantities of
// the mapped PSA contract lines, package usage) and ticket sync (file each
// customer's open vendor alerts as PSA tickets, package tickets). The binary in
// cmd/psa-syncd parses flags and calls into this package; the package
// itself never reads flags, environment variables or globals.
//
// # Layout
//
// psa-syncd is two engines, each a package of its own, and the service
// around them, here:
//
//   - The usage engine, package daemon/usage: one usage pass. Plan computes
//     the changes without writing; Sync writes them and records the run, the
//     customer statuses and the metrics; Reconcile settles writes whose
//     outcome is unknown; ResolveIntent records an operator's answer for one
//     that cannot be settled by reading the PSA. Its package documentation
//     describes a pass, its safety and what it does on each PSA. It knows
//     nothing of configuration, scheduling or HTTP; daemon.go here builds it
//     from the configuration (Daemon.SyncOnce, Daemon.Plan,
//     Daemon.Reconcile, Daemon.ResolveIntent), schedules it and queues its
//     passes.
//   - The ticket engine, package daemon/tickets: one ticket pass over the
//     customers with ticket sync on, through psa.Ticketer and an
//     AlertSource (Sophos Central alerts), with its records in a
//     tickets.Store. It knows nothing of configuration, scheduling or HTTP
//     either; tickets_job.go here runs it (Daemon.TicketPass), schedules it
//     and records its outcome.
//   - The service around them, here: Config (config.go: the YAML
//     configuration file, decoded strictly and validated by Load, with
//     secrets from the file, a *_file or the environment; Config.String
//     redacts every secret; its policies are usage.Policies); Metrics
//     (metrics.go: every psa_sync_* collector on a caller-owned registry,
//     the usage engine's own collectors, usage.Metrics, among them as
//     Metrics.Usage, and InstrumentRoundTripper for the PSA's HTTP client,
//     whose request count the usage engine reads); Daemon (daemon.go,
//     server.go: reloads of the configuration and the export, the
//     leadership of the state database, the usage scheduler and work queue,
//     the ticket scheduler, the HTTP API); operate.go, lastplan.go and
//     api_*.go (metrics restored at start-up, the last plan, the next run,
//     pass progress, approvals, the ledger API); statuspage.go (the status
//     page at /, templates embedded from statuspage/, its CSS from
//     statuspage/static/); errtext.go (ShortError, for tables and the
//     status page). The state itself is
//     package daemon/state (SQLite or PostgreSQL): usage runs, customer
//     statuses, intents and the ledger, the export history, and the ticket
//     records the ticket engine's Store is.
//
// Both jobs run only on the active instance (with PostgreSQL, the holder of
// the leadership lock), each on its own schedule (schedule, every 24h by
// default, and ticket_schedule, every 5 minutes; the export's
// integration.schedule and tickets.schedule win), each one pass at a time.
// A usage pass and a ticket pass may run at once: they share the PSA client
// (and so its bound on concurrent requests) but no records.
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
//	db, err := state.OpenConfig(ctx, cfg.State.Database(cfg.StateDir))
//	if err != nil { ... }
//	defer db.Close()
//	if l, err := db.TryLead(ctx, state.LeaderInfo{Holder: "example"}, time.Second); err != nil || l == nil { ... }
//	doc, err := export.NewStore(cfg.ExportPath).Read()
//	if err != nil { ... }
//	e := usage.NewEngine(usage.EngineOptions{
//		Backend: be, Source: src, State: db, Policies: cfg.Policies,
//		Metrics: m.Usage, Logger: logger, Location: cfg.Location(),
//	})
//	res, err := e.Sync(ctx, doc, usage.PassOptions{Trigger: usage.TriggerCLI})
//	if err != nil { ... }
//	fmt.Println(res.Run.Result, res.Run.Updated, "lines updated")
package daemon

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon"
	"github.com/psa-sync/terraform-provider-psa/daemon/impact"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/internal/sizecap"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/backends"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/schedule"
)

// loadCurrentExport is where the billing-impact report gets the mapping
// export that is in use now: from the store the configuration names (a
// file, S3, or psa-syncd), like every other command; local are the TLS
// files with which to read export_url: self from the daemon on this
// machine that holds it, as check's and validate's.
var loadCurrentExport = func(ctx context.Context, cfg *daemon.Config, local remoteTLS, logger *slog.Logger) (*export.Document, error) {
	doc, _, err := readExport(ctx, cfg, "", local, logger)
	return doc, err
}

// impactFlags are the flags of `plan -terraform-plan`.
type impactFlags struct {
	terraformPlan string
	format        string
	reviewed      string
	jsonFile      string
}

func (f *impactFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.terraformPlan, "terraform-plan", "", "Instead of the quantity changes, report the billing impact of a Terraform plan: the JSON that 'terraform show -json tfplan' prints, in this `file` (at most 256 MiB). "+
		"Nothing is written. Without PSA or usage-source credentials (a pull request from a fork) the report says which figures it could not compute.\n"+
		"With -web.url and the API token the running daemon computes it with its own credentials, export and state database, and on Kaseya BMS\n"+
		"its calls count against the hourly limit per endpoint there; without -web.url it is computed here from the config file, and says how many\n"+
		"Kaseya BMS calls it sent outside that count.")
	fs.StringVar(&f.format, "format", impact.FormatTable, "Output `format` of -terraform-plan: "+strings.Join(impact.Formats, ", ")+" (markdown for a pull-request comment).")
	fs.StringVar(&f.reviewed, "reviewed", "", "With -terraform-plan: the report that was reviewed, as -format json wrote it, in this `file` (a pull request's plan job keeps it\n"+
		"for the apply job on merge). The report is written as without it, then compared with that one: when they differ in which\n"+
		"contract lines, customers or products change, or how (who sets a line, through which customer, at which unit price; not\n"+
		"quantities or amounts, which move with usage), the differences are listed on stderr and the exit code is 1: the plan is\n"+
		"not the one reviewed; do not apply it before its report is reviewed. Not with -web.url.")
	fs.StringVar(&f.jsonFile, "json.file", "", "With -terraform-plan: also write the report as -format json to this `file`, from the same computation (no second\n"+
		"round of PSA and usage-source calls): what a pull request's plan job keeps for -reviewed. Not with -web.url.")
}

// runImpact prints the billing impact of a Terraform plan. With -web.url
// the running daemon computes it (POST /api/v1/impact), whose Kaseya BMS
// calls then count in its state database; else it is computed here, and
// the TLS flags are those of the read of export_url: self from the daemon
// on this machine.
func runImpact(ctx context.Context, e *env, cf *commonFlags, f impactFlags, rf *remoteFlags) int {
	if !slices.Contains(impact.Formats, f.format) {
		fmt.Fprintf(e.stderr, "psa-syncd: -format: unknown format %q: want %s\n", f.format, strings.Join(impact.Formats, ", "))
		return 2
	}
	var api *apiClient
	if rf.url != "" || rf.tokenFile != "" {
		var err error
		if api, err = rf.client(e); err != nil {
			fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
			return 2
		}
		if f.reviewed != "" || f.jsonFile != "" {
			fmt.Fprintln(e.stderr, "psa-syncd: -reviewed and -json.file do not apply with -web.url: compute the report here, without -web.url")
			return 2
		}
		if api.token == "" {
			fmt.Fprintln(e.stderr, "psa-syncd: -terraform-plan with -web.url needs the API token (-web.token-file or PSA_SYNCD_API_TOKEN): "+
				"the daemon computes the report now, with the PSA")
			return 2
		}
	} else if _, err := rf.tls.transport(); err != nil {
		// Files that cannot be used are a usage error now, not only
		// when the export is read from the daemon.
		fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
		return 2
	}
	logger, err := cf.logger(e)
	if err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
		return 2
	}
	data, err := sizecap.ReadFile(f.terraformPlan, impact.MaxPlanSize, "a Terraform plan")
	if err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: -terraform-plan: %v\n", err)
		return 1
	}
	tp, err := impact.ReadTerraformPlan(data)
	if err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: -terraform-plan %s: %v\n", f.terraformPlan, err)
		return 1
	}
	var reviewed *impact.Report
	if f.reviewed != "" {
		// Read first: a job without the reviewed report stops before
		// it computes anything.
		data, err := sizecap.ReadFile(f.reviewed, impact.MaxPlanSize, "a billing impact report")
		if err == nil {
			reviewed, err = impact.ReadReport(data)
		}
		if err != nil {
			fmt.Fprintf(e.stderr, "psa-syncd: -reviewed %s: %v\n", f.reviewed, err)
			return 1
		}
	}
	ctx, stop := signalContext(ctx)
	defer stop()
	if api != nil {
		var out daemon.ImpactReport
		body := map[string]any{"terraform_plan": json.RawMessage(data), "format": f.format}
		if err := api.postWithin(ctx, "/api/v1/impact", body, &out, remotePassTimeout); err != nil {
			return requestFailed(e, err)
		}
		fmt.Fprint(e.stdout, out.Report)
		return 0
	}
	cfg, missing, err := impact.LoadConfig(cf.configFile, e.getenv)
	if err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
		return 1
	}
	if err := rf.tls.localRead(cfg); err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
		return 2
	}
	doc, err := loadCurrentExport(ctx, cfg, rf.tls, logger)
	var noExport string
	if errors.Is(err, fs.ErrNotExist) && cfg.ExportStore() != daemon.StoreSelf {
		// Before the first apply the store holds no export: the plan
		// creates every mapping, as the provider's plan does. (With
		// export_url self a missing export is more likely a state
		// database that is not psa-syncd's, so that stays an error.)
		logger.Warn("No mapping export yet; the current mappings are taken as empty", "err", err)
		doc, noExport, err = export.New(cfg.PSA.System, ""), cfg.ExportName(), nil
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
		return 1
	}
	o, err := impactOptions(cfg, doc, logger)
	if err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
		return 1
	}
	o.NoExport = noExport

	if all := append(slices.Clone(missing.PSA), missing.Source...); len(all) > 0 {
		// Loud in the job log too: in the project's own pipeline a missing
		// secret is a mistake, not a pull request from a fork.
		logger.Warn("Credentials not set; the billing impact leaves out the figures that need them", "missing", strings.Join(all, ","))
	}
	hc := &http.Client{Timeout: 60 * time.Second}
	if len(missing.PSA) > 0 {
		o.NoBackend = "no PSA credentials (" + strings.Join(missing.PSA, ", ") + " not set)"
	} else {
		// The report may not write the daemon's count of Kaseya BMS
		// calls (its connection is read-only): it says what it sent.
		bc := cfg.BackendConfig(hc, logger.With("component", "psa"))
		logCalls := countUncounted(&bc)
		defer logCalls(logger)
		if be, err := backends.New(bc); err != nil {
			o.NoBackend = err.Error()
		} else {
			o.Backend = be
		}
	}
	if len(missing.Source) > 0 {
		o.NoSource = "no usage-source credentials (" + strings.Join(missing.Source, ", ") + " not set)"
	} else if src, err := cfg.NewSource(hc, logger.With("component", "source")); err != nil {
		o.NoSource = err.Error()
	} else {
		o.Source, o.SourceName = src, src.Name()
	}
	if cfg.PSA.System == psa.SystemKaseyaBMS {
		db, err := openLedger(ctx, cfg)
		switch {
		case err != nil:
			logger.Warn("Cannot read the ledger; Kaseya BMS quantities now are not computed", "err", err)
		case db != nil:
			defer func() {
				if err := db.Close(); err != nil {
					logger.Warn("Error closing the state database", "err", err)
				}
			}()
			o.State = db
		}
	}
	rep, err := impact.Compute(ctx, o, doc, tp)
	if err != nil {
		logger.Error("Error computing the billing impact", "err", err)
		return 1
	}
	if err := impact.Write(e.stdout, rep, f.format); err != nil {
		logger.Error("Error writing the billing impact", "err", err)
		return 1
	}
	if f.jsonFile != "" {
		var b strings.Builder
		if err := impact.Write(&b, rep, impact.FormatJSON); err != nil {
			logger.Error("Error writing the billing impact", "err", err)
			return 1
		}
		if err := os.WriteFile(f.jsonFile, []byte(b.String()), 0o600); err != nil {
			fmt.Fprintf(e.stderr, "psa-syncd: -json.file: %v\n", err)
			return 1
		}
	}
	if reviewed == nil {
		return 0
	}
	diffs := rep.Differences(reviewed)
	if len(diffs) == 0 {
		return 0
	}
	fmt.Fprintf(e.stderr, "psa-syncd: the billing impact of this plan differs from the one reviewed (%s):\n", f.reviewed)
	for _, d := range diffs {
		fmt.Fprintf(e.stderr, "  - %s\n", d)
	}
	fmt.Fprintln(e.stderr, "Do not apply this plan: have its report above reviewed first (in CI, a new pull request's plan).")
	return 1
}

// impactOptions are the options of the billing impact of a plan against
// doc, the export in use, under cfg: without a backend, source or ledger.
func impactOptions(cfg *daemon.Config, doc *export.Document, logger *slog.Logger) (impact.Options, error) {
	loc := cfg.Location()
	if in := doc.Integration; in != nil && in.Timezone != "" {
		var err error
		if loc, err = schedule.LoadLocation(in.Timezone); err != nil {
			return impact.Options{}, fmt.Errorf("mapping export: integration.timezone: %w", err)
		}
	}
	return impact.Options{Policies: cfg.Policies, Location: loc, Logger: logger.With("component", "impact"), SourceName: cfg.Source.Type}, nil
}

// impacter reads the billing impact reports of a running daemon (POST
// /api/v1/impact), logging to logger: a plan or format it refuses is the
// request's, answered before the report takes its turn. Their backend and
// source are the daemon's: on Kaseya BMS their calls count against the
// hourly limit that the passes keep in the state database, which holds the
// ledger too.
func impacter(logger *slog.Logger) func(plan []byte, format string) (daemon.ImpactFunc, error) {
	return func(plan []byte, format string) (daemon.ImpactFunc, error) {
		if format == "" {
			format = impact.FormatTable
		}
		if !slices.Contains(impact.Formats, format) {
			return nil, fmt.Errorf("%w: unknown format %q: want %s", daemon.ErrImpactRequest, format, strings.Join(impact.Formats, ", "))
		}
		tp, err := impact.ReadTerraformPlan(plan)
		if err != nil {
			return nil, fmt.Errorf("%w: terraform_plan: %v", daemon.ErrImpactRequest, err)
		}
		return func(ctx context.Context, req daemon.ImpactRequest, w io.Writer) error {
			o, err := impactOptions(req.Config, req.Export, logger)
			if err != nil {
				return err
			}
			o.Backend, o.Source, o.SourceName, o.NoExport = req.Backend, req.Source, req.Source.Name(), req.NoExport
			if req.Config.PSA.System == psa.SystemKaseyaBMS {
				o.State = req.State
			}
			rep, err := impact.Compute(ctx, o, req.Export, tp)
			if err != nil {
				return err
			}
			return impact.Write(w, rep, format)
		}, nil
	}
}

// openLedger opens the state database that holds the ledger, where Kaseya
// BMS quantities come from, or returns nil when there is none to read here.
// PostgreSQL, which the CI runner reaches like the daemon does, is opened
// read-only: the report never migrates or writes the active instance's
// database. An SQLite file is only on the daemon's host, and readable only
// while the daemon does not hold it; it is read as it is too (neither
// imported nor migrated), so the report of a newer psa-syncd never leaves
// the installed daemon a database it refuses.
func openLedger(ctx context.Context, cfg *daemon.Config) (*state.DB, error) {
	dbc := cfg.State.Database(cfg.StateDir)
	if dbc.Driver == state.DriverPostgres {
		dbc.ReadOnly = true
		dbc.Path = "" // no bbolt import
		return state.OpenConfig(ctx, dbc)
	}
	if _, err := os.Stat(filepath.Join(cfg.StateDir, state.FileName)); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	dbc.Existing = true
	db, err := state.OpenConfig(ctx, dbc)
	if err != nil {
		return nil, err
	}
	if err := db.CheckVersion(); err != nil {
		return nil, errors.Join(err, db.Close())
	}
	return db, nil
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
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
}

func (f *impactFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.terraformPlan, "terraform-plan", "", "Instead of the quantity changes, report the billing impact of a Terraform plan: the JSON that 'terraform show -json tfplan' prints, in this `file` (at most 256 MiB). "+
		"Nothing is written. Without PSA or usage-source credentials (a pull request from a fork) the report says which figures it could not compute.")
	fs.StringVar(&f.format, "format", impact.FormatTable, "Output `format` of -terraform-plan: "+strings.Join(impact.Formats, ", ")+" (markdown for a pull-request comment).")
}

// runImpact prints the billing impact of a Terraform plan; local are the
// TLS flags of the read of export_url: self from the daemon on this
// machine.
func runImpact(ctx context.Context, e *env, cf *commonFlags, f impactFlags, local remoteTLS) int {
	if !slices.Contains(impact.Formats, f.format) {
		fmt.Fprintf(e.stderr, "psa-syncd: -format: unknown format %q: want %s\n", f.format, strings.Join(impact.Formats, ", "))
		return 2
	}
	// Files that cannot be used are a usage error now, not only when the
	// export is read from the daemon.
	if _, err := local.transport(); err != nil {
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
	cfg, missing, err := impact.LoadConfig(cf.configFile, e.getenv)
	if err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
		return 1
	}
	if err := local.localRead(cfg); err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
		return 2
	}
	ctx, stop := signalContext(ctx)
	defer stop()
	doc, err := loadCurrentExport(ctx, cfg, local, logger)
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
	loc := cfg.Location()
	if in := doc.Integration; in != nil && in.Timezone != "" {
		if loc, err = schedule.LoadLocation(in.Timezone); err != nil {
			fmt.Fprintf(e.stderr, "psa-syncd: mapping export: integration.timezone: %v\n", err)
			return 1
		}
	}

	if all := append(slices.Clone(missing.PSA), missing.Source...); len(all) > 0 {
		// Loud in the job log too: in the project's own pipeline a missing
		// secret is a mistake, not a pull request from a fork.
		logger.Warn("Credentials not set; the billing impact leaves out the figures that need them", "missing", strings.Join(all, ","))
	}
	hc := &http.Client{Timeout: 60 * time.Second}
	o := impact.Options{NoExport: noExport, Policies: cfg.Policies, Location: loc, Logger: logger.With("component", "impact"), SourceName: cfg.Source.Type}
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
	return 0
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

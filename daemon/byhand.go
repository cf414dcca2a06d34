package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/psa/backends"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/schedule"
)

// ByHand is the state database of a command run by hand that records an
// operator's word in it (resolve, set-by-hand, orphans -clear) or what one
// read of the PSA says (rebind), held as the active instance, as
// Daemon.BecomeActive holds it. It needs no Daemon: the config is
// LoadState's (LoadStateMonth's for set-by-hand, LoadStatePSA's for
// rebind), so no secret it does not use is read (the source's and the
// API's, and but for rebind the PSA's), and the command runs by hand while
// psa-syncd is stopped, where the service's systemd credentials or
// Kubernetes Secret cannot be read.
type ByHand struct {
	db     *state.DB
	cfg    *Config
	lead   *state.Leadership
	logger *slog.Logger
}

// LeadByHand makes the command that opened db, the state database of cfg,
// its active instance: at once with SQLite, whose file lock opening it
// took; with PostgreSQL when no psa-syncd holds the leadership lock, else a
// *StandbyError naming the one that does. As Daemon.BecomeActive does, it
// marks the runs that a stopped or killed psa-syncd left running as
// interrupted. Close gives the leadership up; db stays the caller's.
func LeadByHand(ctx context.Context, db *state.DB, cfg *Config, logger *slog.Logger) (*ByHand, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	host, _ := os.Hostname()
	interval := cfg.State.LockInterval
	if interval <= 0 {
		interval = DefaultLockInterval
	}
	// No URL: a command serves no API, so that a standby has nowhere to
	// forward to while it holds the lock.
	l, err := db.TryLead(ctx, state.LeaderInfo{Holder: fmt.Sprintf("%s pid %d (psa-syncd by hand)", host, os.Getpid()), Since: time.Now()}, interval)
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	if l == nil {
		return nil, &StandbyError{Active: activeInstanceOf(db)}
	}
	n, err := db.InterruptRunningRuns(time.Now(), interruptedRunReason)
	switch {
	case err != nil:
		logger.Error("Could not mark the runs left running by an interrupted pass as failed", "err", err)
	case n > 0:
		logger.Warn("Marked the runs an interrupted pass left running as failed", "runs", n)
	}
	return &ByHand{db: db, cfg: cfg, lead: l, logger: logger}, nil
}

// ResolveIntent is Daemon.ResolveIntent by hand: it records the answer
// for open intent id in the state database, and makes no PSA request.
func (h *ByHand) ResolveIntent(id int64, posted bool, note string) (state.Intent, error) {
	e := usage.NewEngine(usage.EngineOptions{State: h.db, Logger: h.logger.With("component", "sync")})
	in, err := e.ResolveIntent(id, posted, note)
	return in, h.noLongerActive(err)
}

// ReleaseTicketCreate is Daemon.ReleaseTicketCreate by hand: it records
// the answer in the state database, and makes no PSA request.
func (h *ByHand) ReleaseTicketCreate(ref, note string) (tickets.Record, error) {
	r, err := h.db.ReleaseTicketCreate(ref, note, time.Now())
	return r, h.noLongerActive(err)
}

// RecordSetByHand is Daemon.RecordSetByHand by hand, on a config of
// LoadStateMonth: the month that has ended is the month in the export's
// timezone when doc (the mapping export, nil when it could not be read)
// names one, else in the config's, as the daemon takes it.
func (h *ByHand) RecordSetByHand(p source.Period, note, who string, doc *export.Document) (state.Run, error) {
	if who = strings.TrimSpace(who); who != "" && strings.TrimSpace(note) != "" {
		note = "user " + who + ": " + strings.TrimSpace(note)
	}
	loc := h.cfg.Location()
	if doc != nil && doc.Integration != nil && doc.Integration.Timezone != "" {
		l, err := schedule.LoadLocation(doc.Integration.Timezone)
		if err != nil {
			return state.Run{}, fmt.Errorf("daemon: the mapping export's timezone: %w", err)
		}
		loc = l
	}
	e := usage.NewEngine(usage.EngineOptions{State: h.db, Policies: h.cfg.Policies, Location: loc,
		Logger: h.logger.With("component", "sync", "system", string(h.cfg.PSA.System))})
	run, err := e.RecordSetByHand(p, note)
	return run, h.noLongerActive(err)
}

// ClearOrphans is Daemon.ClearOrphans by hand: the clears are recorded
// under the config's psa.system, which LoadState does not check, so it is
// checked here.
func (h *ByHand) ClearOrphans(contract, service, note, who string, zeroed bool) ([]usage.OrphanedLine, error) {
	if err := h.cfg.PSA.validateSystem(); err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	if who = strings.TrimSpace(who); who != "" {
		note = strings.TrimSpace("user " + who + ": " + strings.TrimSpace(note))
	}
	e := usage.NewEngine(usage.EngineOptions{State: h.db, System: h.cfg.PSA.System,
		Logger: h.logger.With("component", "sync", "system", string(h.cfg.PSA.System))})
	lines, err := e.ClearOrphans(contract, service, note, zeroed)
	return lines, h.noLongerActive(err)
}

// Rebind is Daemon.RebindInstance by hand, on a config of LoadStatePSA:
// one read of the PSA learns the instance it is connected to, which is
// recorded as the one whose usage the state database holds.
func (h *ByHand) Rebind(ctx context.Context) (old state.PSAInstance, had bool, now state.PSAInstance, err error) {
	bc := h.cfg.BackendConfig(&http.Client{Timeout: 60 * time.Second, Transport: psaTransport()}, h.logger.With("component", "psa"))
	if bc.KaseyaBMS != nil {
		// Its calls count against the hourly limit that the daemon's
		// passes keep in the state database, as NewBackend does.
		kc := *bc.KaseyaBMS
		kc.Calls = h.db.APICalls()
		bc.KaseyaBMS = &kc
	}
	be, err := backends.New(bc)
	if err != nil {
		return old, false, now, fmt.Errorf("daemon: psa: %w", err)
	}
	return rebind(ctx, h.db, be, time.Now().UTC(), h.logger)
}

// noLongerActive is Daemon.noLongerActive: with PostgreSQL, the lock's
// session may be lost between LeadByHand and the write.
func (h *ByHand) noLongerActive(err error) error {
	if !errors.Is(err, state.ErrNotLeader) {
		return err
	}
	return &NoLongerActiveError{Active: activeInstanceOf(h.db), err: err}
}

// Close gives the leadership up.
func (h *ByHand) Close() error { return h.lead.Release() }

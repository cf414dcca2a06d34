package daemon

import (
	"errors"
	"fmt"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
)

// RestoreMetrics sets the gauges that describe past passes from the state
// database (see Engine.RestoreMetrics), so that a restart neither resolves
// alerts nor makes the last success look like it never happened. Run calls
// it at start-up, after loading the mapping export. The ticket metrics
// are restored too, and the last plan; a plan that cannot be read (one a
// newer psa-syncd stored, with a hold this one does not know) is reported
// but keeps nothing else from being restored.
func (d *Daemon) RestoreMetrics() error {
	d.metricsRestored.Store(true)
	planErr := d.restorePlan()
	if planErr != nil {
		planErr = fmt.Errorf("daemon: the last plan was not restored (GET /api/v1/plan has none until the next pass): %w", planErr)
	}
	e, doc, err := d.engine()
	if err != nil {
		// No export yet: restore what needs none (the timestamps and the
		// unmapped usage); the customers follow when an export loads
		// (useExport).
		e, doc = d.exportlessEngine(), nil
	}
	return errors.Join(planErr, e.RestoreMetrics(doc), d.restoreTicketMetrics())
}

// recordPlan keeps p, the plan of a pass (or of a fresh plan for every
// customer) for customer ("" for all), as the last plan: in memory, and in
// the state database so that GET /api/v1/plan shows it after a restart too.
func (d *Daemon) recordPlan(p *usage.Plan, customer string) {
	if customer != "" && !d.plans.held() {
		// A process that has not restored the last plan (psa-syncd sync
		// -customer; psa-syncd run restores it at start-up) merges one
		// customer's plan into the stored one, not over it.
		if err := d.restorePlan(); err != nil {
			d.logger.Warn("Could not read the last plan from the state database; it now holds only this customer's", "customer", customer, "err", err)
		}
	}
	d.plans.record(p, customer)
	if customer != "" && d.cfg.Load().Policies.SurgeGuardOn() {
		if rec, err := usage.ReadSurgeRecord(d.db); err != nil {
			d.logger.Warn("Could not read the lines held for a surge; the last plan keeps the review code of the last pass over all customers", "err", err)
		} else {
			d.plans.setSurge(rec)
		}
	}
	d.storePlan()
}

// recordFreshPlan keeps p, a plan for every customer computed for POST
// /api/v1/plan, as the last plan, unless a pass recorded a newer one while
// p was being computed (see planMemory.recordFresh).
func (d *Daemon) recordFreshPlan(p *usage.Plan) {
	if !d.plans.recordFresh(p) {
		d.logger.Debug("A pass recorded its plan while a fresh plan was computed; the pass's stays the last plan", "computed_at", p.ComputedAt)
		return
	}
	d.storePlan()
}

// storePlan keeps the last plan in the state database.
func (d *Daemon) storePlan() {
	if err := d.db.PutSnapshot(lastPlanSnapshot, d.plans.stored()); err != nil {
		d.logger.Warn("Could not keep the last plan in the state database; GET /api/v1/plan shows it until a restart", "err", err)
	}
}

// restorePlan loads the last plan from the state database, its texts
// without the names of the state database that a psa-syncd older than
// schema version 12 may have written into a shared one after the
// migration (state.PublicSnapshot): GET /api/v1/plan and the status page
// serve it without credentials.
func (d *Daemon) restorePlan() error {
	var s storedPlan
	if _, err := d.db.PublicSnapshot(lastPlanSnapshot, &s); err != nil {
		return err
	}
	d.plans.restore(s)
	return nil
}

// setNextRun records the time of the next scheduled pass (zero: none).
func (d *Daemon) setNextRun(t time.Time) {
	d.metrics.SetNextRun(t)
	if t.IsZero() {
		d.nextRun.Store(0)
		return
	}
	d.nextRun.Store(t.UnixNano())
}

// NextRun returns the time of the next scheduled pass, or the zero time
// while no valid schedule is loaded.
func (d *Daemon) NextRun() time.Time {
	if n := d.nextRun.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// Progress reports the run id of the pass in progress (0 when none runs)
// and how many of its line writes are done out of how many.
func (d *Daemon) Progress() (run int64, done, total int) { return d.metrics.Progress() }

// LastUnmapped returns the usage the last pass could not bill, as kept in
// the state database, less the customers and products the loaded export
// maps since (Engine.StillUnmapped): GET /api/v1/unmapped and the status
// page list what psa_sync_unmapped counts, not what was mapped after the
// pass until the next one. Its Time is zero before the first pass.
func (d *Daemon) LastUnmapped() (usage.UnmappedReport, error) {
	rep, err := StoredUnmapped(d.db)
	if err != nil {
		return rep, err
	}
	if e, doc, err := d.engine(); err == nil {
		rep = e.StillUnmapped(rep, doc)
	}
	return rep, nil
}

// StoredUnmapped is Daemon.LastUnmapped read from db, for a command that
// opens the state database alone (orphans run by hand while psa-syncd is
// stopped, with none of its secrets but the state's).
func StoredUnmapped(db *state.DB) (usage.UnmappedReport, error) {
	var rep usage.UnmappedReport
	if _, err := db.Snapshot(usage.SnapshotUnmapped, &rep); err != nil {
		return usage.UnmappedReport{}, err
	}
	u := &rep.Unmapped
	if u.Customers == nil {
		u.Customers = []usage.UnmappedCustomer{}
	}
	if u.Products == nil {
		u.Products = []usage.UnmappedProduct{}
	}
	if u.Unassigned == nil {
		u.Unassigned = []source.Record{}
	}
	return rep, nil
}

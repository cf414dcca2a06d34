package usage

import (
	"fmt"
	"slices"
)

// snapshotSurge names the state database's snapshot of what the last pass
// over all customers found of a surge (surgeVerdict): a pass for one
// customer holds its surging lines by it.
const snapshotSurge = "usage_surge"

// surgeVerdict is what a pass over all customers found of a surge (see
// Policies.SurgeLinesPercent): the lines that surge in the whole pass, and
// in each service whose lines surge.
type surgeVerdict struct {
	// Period is the billing month the pass synced.
	Period string `json:"period"`
	// Pass is set when the pass's lines surged.
	Pass *surgeCount `json:"pass,omitempty"`
	// Services holds the services whose lines surged, by PSA service id.
	Services map[string]surgeCount `json:"services,omitempty"`
}

// surgeCount counts the lines of a pass, or of one of its services, whose
// current quantity is known and above 0 (Lines), and of them those that
// surge (Surging).
type surgeCount struct {
	Surging int `json:"surging"`
	Lines   int `json:"lines"`
}

// surgeOn reports whether the guard on surges is on.
func (e *Engine) surgeOn() bool {
	return e.policies.SurgeLinesPercent > 0 && e.policies.SurgeLinesPercent < 100
}

// surgeIncrease is Policies.SurgeIncreasePercent, or its default when an
// Engine was given none.
func (e *Engine) surgeIncrease() float64 {
	if v := e.policies.SurgeIncreasePercent; v > 0 {
		return v
	}
	return DefaultPolicies.SurgeIncreasePercent
}

// surgeMinLines is Policies.SurgeMinLines, or its default when an Engine
// was given none.
func (e *Engine) surgeMinLines() int {
	if n := e.policies.SurgeMinLines; n > 0 {
		return n
	}
	return DefaultPolicies.SurgeMinLines
}

// surges reports whether c, a line not failed, rises by more than
// surge_increase_percent of a current quantity that is known and above 0.
func (e *Engine) surges(c *Change) bool {
	return c.Action != ActionFailed && c.CurrentKnown && c.Current > 0 && c.Desired > c.Current &&
		float64(c.Desired-c.Current)*100/float64(c.Current) > e.surgeIncrease()
}

// mayHoldSurge reports whether the guard on surges may hold one of
// changes, the lines of one customer: the pass then hands none of them to
// its writer before it has decided every customer and counted the lines
// that surge.
func (e *Engine) mayHoldSurge(changes []Change) bool {
	return e.surgeOn() && slices.ContainsFunc(changes, func(c Change) bool { return c.Action == ActionUpdate && e.surges(&c) })
}

// surged reports whether n lines surge as a surge is held: at least
// surge_min_lines, and more than surge_lines_percent of the lines.
func (e *Engine) surged(n surgeCount) bool {
	return n.Surging >= e.surgeMinLines() && float64(n.Surging)*100 > e.policies.SurgeLinesPercent*float64(n.Lines)
}

// countSurges counts the lines of p that surge, in the whole pass and by
// service, and returns the verdict.
func (e *Engine) countSurges(p *pass) surgeVerdict {
	var all surgeCount
	services := map[string]surgeCount{}
	for _, cp := range p.customers {
		if cp.err != nil {
			continue
		}
		for i := range cp.changes {
			c := &cp.changes[i]
			if c.Action == ActionFailed || !c.CurrentKnown || c.Current <= 0 {
				continue
			}
			n := services[c.ServiceID]
			n.Lines++
			all.Lines++
			if e.surges(c) {
				n.Surging++
				all.Surging++
			}
			services[c.ServiceID] = n
		}
	}
	v := surgeVerdict{Period: p.plan.Period.String()}
	if e.surged(all) {
		v.Pass = &all
	}
	for id, n := range services {
		if e.surged(n) {
			if v.Services == nil {
				v.Services = map[string]surgeCount{}
			}
			v.Services[id] = n
		}
	}
	return v
}

// holdSurges holds, for review, the increases of p that surge when more
// than surge_lines_percent of the lines above 0 surge, at least
// surge_min_lines of them, in the whole pass or among one service's lines:
// a vendor that counts everything twice from one day to the next (a bug,
// a changed report) raises every line at once, while customers' own
// growth raises a few. A pass over all customers counts its own lines
// (and a pass that writes keeps the verdict in the state database); a pass
// for one customer, which has too few lines to tell, goes by the verdict
// of the last pass over all customers of the same billing month. An
// approval of a line (at its desired units, when it names units) releases
// it, as it releases the guard's holds. The plan calls it once every
// customer is decided and before any line that may surge is written (see
// mayHoldSurge).
func (e *Engine) holdSurges(p *pass, o PassOptions) {
	if !e.surgeOn() {
		return
	}
	var v surgeVerdict
	last := ""
	if o.Customer == "" {
		v = e.countSurges(p)
		if e.db != nil && !o.planOnly && !o.DryRun && !o.WritesDisabled {
			if err := e.db.PutSnapshot(snapshotSurge, v); err != nil {
				e.logger.Warn("Could not record the lines that surge; a pass for one customer goes by the last pass over all customers recorded", "err", err)
			}
		}
	} else {
		if e.db != nil {
			if _, err := e.db.Snapshot(snapshotSurge, &v); err != nil {
				e.logger.Warn("Could not read the lines that surged in the last pass over all customers; this pass for one customer does not hold its increases for a surge", "err", err)
			}
		}
		if v.Period != p.plan.Period.String() {
			return
		}
		last = fmt.Sprintf("the last pass over all customers of %s found that ", v.Period)
	}
	if v.Pass == nil && len(v.Services) == 0 {
		return
	}
	for _, cp := range p.customers {
		if cp.err != nil {
			continue
		}
		for i := range cp.changes {
			c := &cp.changes[i]
			if c.Action != ActionUpdate || !e.surges(c) {
				continue
			}
			var where string
			var n surgeCount
			if s, ok := v.Services[c.ServiceID]; ok {
				n, where = s, "the lines of service "+c.ServiceID
			} else if v.Pass != nil {
				n, where = *v.Pass, "the pass's lines"
			} else {
				continue
			}
			pct := float64(c.Desired-c.Current) * 100 / float64(c.Current)
			why := fmt.Sprintf("%s%d of %d of %s above 0 rise by more than surge_increase_percent %g at once (more than surge_lines_percent %g), as when the vendor counts twice",
				last, n.Surging, n.Lines, where, e.surgeIncrease(), e.policies.SurgeLinesPercent)
			approve, units := o.approves(c.ServiceID)
			switch {
			case approve && (units == nil || *units == c.Desired):
				c.Reason += fmt.Sprintf("; increase of %s%% approved although %s", percentText(pct, e.surgeIncrease()), why)
				continue
			case approve:
				c.Action, c.surge, c.staleApproval = ActionHeld, true, true
				c.Reason += fmt.Sprintf("; increase of %s%% (from %d to %d) still held for review: the usage changed since the review (reviewed %d, now %d), so the approval was not applied; %s; check the usage, then approve again with %s",
					percentText(pct, e.surgeIncrease()), c.Current, c.Desired, *units, c.Desired, why, approveCommand(c.CustomerID, c.ServiceID, c.Desired, cp.period))
			default:
				c.Action, c.surge = ActionHeld, true
				c.Reason += fmt.Sprintf("; increase of %s%% (from %d to %d) held for review: %s; check the usage with the vendor, then apply with %s",
					percentText(pct, e.surgeIncrease()), c.Current, c.Desired, why, approveCommand(c.CustomerID, c.ServiceID, c.Desired, cp.period))
			}
			p.surgeHeld++
		}
	}
}

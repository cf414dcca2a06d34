package usage

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
)

// snapshotSurge names the state database's snapshot of what the last pass
// over all customers found of a surge (surgeVerdict): a pass for one
// customer holds its surging lines by it. It is stored through
// PassWrites: on PostgreSQL, once this instance has led, only while it
// holds the leadership lock, so that a deposed pass's verdict does not
// replace the new active instance's.
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
	// Held lists the lines the surge guard holds, by customer and
	// service: later passes (of the next month too) go on holding those
	// that still surge, however few of the lines surge by then (lines
	// approved one by one no longer do), until each is approved (alone,
	// or with the surge's review code) or its usage falls back. A pass
	// for one customer replaces that customer's.
	Held []surgeLine `json:"held,omitempty"`
}

// surgeLine is a line held by the surge guard: its customer, service, and
// the quantities the pass held it at.
type surgeLine struct {
	Customer string `json:"customer"`
	Service  string `json:"service"`
	Current  int64  `json:"current"`
	Desired  int64  `json:"desired"`
	// Undecided is set on a line kept held because the pass that wrote
	// the record could not decide it (its customer or line failed): the
	// review code of that pass's lines does not cover it.
	Undecided bool `json:"undecided,omitempty"`
}

// SurgeHold is what a pass over all customers held for a surge
// (Policies.SurgeLinesPercent): the lines, and the review code that
// approves exactly them at their desired units (PassOptions.ApproveSurge).
type SurgeHold struct {
	// Lines is the number of lines held for the surge.
	Lines int `json:"lines"`
	// Review is the review code of those lines at their current and
	// desired units in Period: a pass approving it releases them only
	// when it holds exactly the same lines at the same units.
	Review string `json:"review"`
	// Period is the billing month of the lines.
	Period string `json:"period"`
	// Approval, in a pass that approves a surge, says whether the code
	// matched: "applied", or "stale" when the pass held other lines or
	// units than the review (then it writes none of them).
	Approval string `json:"approval,omitempty"`
}

// surgeReview is the review code of the lines held in a surge in period:
// the start of a SHA-256 of the period and every line's customer, service,
// current and desired units, in order of customer and service.
func surgeReview(period string, held []surgeLine) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n", period)
	for _, l := range held {
		fmt.Fprintf(h, "%q\t%q\t%d\t%d\n", l.Customer, l.Service, l.Current, l.Desired)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// IsSurgeReview reports whether s has the form of a surge's review code
// (SurgeHold.Review): 12 lower-case hexadecimal digits.
func IsSurgeReview(s string) bool {
	if len(s) != 12 {
		return false
	}
	for _, r := range s {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return false
		}
	}
	return true
}

// surgeApproveCommand is the psa-syncd command that approves every line
// held for a surge at once with its review code.
func surgeApproveCommand(review, period string) string {
	return fmt.Sprintf("sync --approve --surge %s --period %s", review, period)
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
	return e.policies.SurgeGuardOn()
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
// of the last pass over all customers of the same billing month. A line
// that verdict held stays held while it still surges, though fewer lines
// surge since (others were approved one by one). An approval of a line
// (at its desired units, when it names units) releases it, as it releases
// the guard's holds; an approval of the surge (PassOptions.ApproveSurge)
// releases every line the pass holds for it when the pass holds exactly
// the lines and units reviewed. The plan calls it once every customer is
// decided and before any line that may surge is written (see
// mayHoldSurge).
func (e *Engine) holdSurges(p *pass, o PassOptions) {
	if !e.surgeOn() {
		if o.Customer == "" && !o.planOnly && !o.DryRun && !o.WritesDisabled {
			// The pass writes what the guard held.
			e.metrics.setSurgeHeld(0)
		}
		return
	}
	period := p.plan.Period.String()
	var prev surgeVerdict
	// unread is set when the record could not be read: the pass then does
	// not write it, or it would replace the lines held of the customers
	// it did not see (every other customer, in a pass for one) with
	// nothing, and the next pass over all customers would write those
	// lines once fewer of them surge than surge_lines_percent. A pass over
	// all customers does replace a record that was read but cannot be
	// decoded (written by a newer psa-syncd, or damaged): its lines are
	// lost either way, and its own verdict and holds are the best record.
	unread := false
	if e.db != nil {
		if found, err := e.readSurge(&prev); err != nil {
			prev = surgeVerdict{} // what was decoded of it, if anything, is not the record
			unread = o.Customer != "" || !found
			e.logger.Warn("Could not read the lines that surged in the last pass over all customers; a pass for one customer does not hold its increases for a surge, and lines approved one by one may release the others",
				"err", err, "record_kept", unread)
		}
	}
	// A pass of the month that has ended (-period) keeps the new month's
	// verdict, and its lines held, as they are.
	newer := prev.Period > period
	// The lines held, by the month whose pass held them.
	held := map[[2]string]string{}
	var stored []surgeLine
	if !newer {
		stored = prev.Held
		for _, l := range prev.Held {
			held[[2]string{l.Customer, l.Service}] = prev.Period
		}
	}
	if prev.Period != period {
		// An earlier month's verdict is not this month's; the lines it
		// held stay held while they still surge (a surge that goes on
		// over the month's end, some of its lines approved).
		prev = surgeVerdict{}
	}
	var v surgeVerdict
	last := ""
	if o.Customer == "" {
		v = e.countSurges(p)
	} else {
		v = prev
		last = fmt.Sprintf("the last pass over all customers of %s found that ", period)
	}
	type hold struct {
		c   *Change
		cp  *customerPass
		why string
	}
	var holds []hold
	for _, cp := range p.customers {
		if cp.err != nil {
			continue
		}
		for i := range cp.changes {
			c := &cp.changes[i]
			if c.Action != ActionUpdate || !e.surges(c) {
				continue
			}
			var why string
			if s, ok := v.Services[c.ServiceID]; ok {
				why = e.surgeWhy(last, s, "the lines of service "+c.ServiceID)
			} else if v.Pass != nil {
				why = e.surgeWhy(last, *v.Pass, "the pass's lines")
			} else if month := held[[2]string{c.CustomerID, c.ServiceID}]; month != "" {
				why = fmt.Sprintf("a pass over all customers of %s held it when many lines rose at once (policies.surge_lines_percent), as when the vendor counts twice, and it still rises by more than surge_increase_percent %g; lines approved since do not release the others",
					month, e.surgeIncrease())
			} else {
				continue
			}
			holds = append(holds, hold{c, cp, why})
		}
	}
	lines := make([]surgeLine, 0, len(holds))
	for _, h := range holds {
		lines = append(lines, surgeLine{Customer: h.c.CustomerID, Service: h.c.ServiceID, Current: h.c.Current, Desired: h.c.Desired})
	}
	slices.SortFunc(lines, func(a, b surgeLine) int {
		if c := strings.Compare(a.Customer, b.Customer); c != 0 {
			return c
		}
		return strings.Compare(a.Service, b.Service)
	})
	review := surgeReview(period, lines)
	bulk := o.Customer == "" && o.ApproveSurge != ""
	approved := bulk && o.ApproveSurge == review
	if o.Customer == "" && (len(holds) > 0 || bulk) {
		p.plan.Surge = &SurgeHold{Lines: len(holds), Review: review, Period: period}
		switch {
		case approved:
			p.plan.Surge.Approval = "applied"
		case bulk:
			p.plan.Surge.Approval = "stale"
		}
	}
	var keep []surgeLine
	for _, h := range holds {
		c, cp := h.c, h.cp
		pct := float64(c.Desired-c.Current) * 100 / float64(c.Current)
		approve, units := o.approves(c.ServiceID)
		switch {
		case approved:
			c.Reason += fmt.Sprintf("; increase of %s%% approved with the surge's review code %s although %s", percentText(pct, e.surgeIncrease()), review, h.why)
			continue
		case approve && !bulk && (units == nil || *units == c.Desired):
			c.Reason += fmt.Sprintf("; increase of %s%% approved although %s", percentText(pct, e.surgeIncrease()), h.why)
			continue
		case bulk:
			// Not a stale approval of the customer's line: the pass's
			// Surge says the approval was not applied.
			c.Action, c.surge = ActionHeld, true
			c.Reason += fmt.Sprintf("; increase of %s%% (from %d to %d) still held for review: the lines held for the surge changed since the review (review code %s, now %s), so the approval was not applied to any of them; %s; check the usage, then approve again with %s",
				percentText(pct, e.surgeIncrease()), c.Current, c.Desired, o.ApproveSurge, review, h.why, surgeApproveCommand(review, period))
		case approve:
			c.Action, c.surge, c.staleApproval = ActionHeld, true, true
			c.Reason += fmt.Sprintf("; increase of %s%% (from %d to %d) still held for review: the usage changed since the review (reviewed %d, now %d), so the approval was not applied; %s; check the usage, then approve again with %s",
				percentText(pct, e.surgeIncrease()), c.Current, c.Desired, *units, c.Desired, h.why, approveCommand(c.CustomerID, c.ServiceID, c.Desired, cp.period))
		default:
			c.Action, c.surge = ActionHeld, true
			c.Reason += fmt.Sprintf("; increase of %s%% (from %d to %d) held for review: %s; check the usage with the vendor, then apply with %s",
				percentText(pct, e.surgeIncrease()), c.Current, c.Desired, h.why, approveCommand(c.CustomerID, c.ServiceID, c.Desired, cp.period))
		}
		p.surgeHeld++
		keep = append(keep, surgeLine{Customer: c.CustomerID, Service: c.ServiceID, Current: c.Current, Desired: c.Desired})
	}
	if e.db == nil || o.planOnly || o.DryRun || o.WritesDisabled || newer || unread {
		return
	}
	if o.Customer != "" {
		// The customer's lines replace those held of it.
		v.Held = slices.DeleteFunc(slices.Clone(stored), func(l surgeLine) bool { return l.Customer == o.Customer })
		v.Period = period
	}
	// A line this pass did not decide (its customer or line failed, its
	// current quantity could not be read) keeps what a surge held of it.
	decided := map[[2]string]bool{}
	inPass := map[string]bool{}
	for _, cp := range p.customers {
		inPass[cp.m.CustomerID] = true
		if cp.err != nil {
			continue
		}
		for i := range cp.changes {
			if c := &cp.changes[i]; c.Action != ActionFailed && c.CurrentKnown {
				decided[[2]string{c.CustomerID, c.ServiceID}] = true
			}
		}
	}
	for _, l := range stored {
		if inPass[l.Customer] && !decided[[2]string{l.Customer, l.Service}] {
			l.Undecided = true
			v.Held = append(v.Held, l)
		}
	}
	v.Held = append(v.Held, keep...)
	slices.SortFunc(v.Held, func(a, b surgeLine) int {
		if c := strings.Compare(a.Customer, b.Customer); c != 0 {
			return c
		}
		return strings.Compare(a.Service, b.Service)
	})
	if err := e.db.PassWrites().PutSnapshot(snapshotSurge, v); err != nil {
		e.logger.Warn("Could not record the lines that surge; a pass for one customer goes by the last pass over all customers recorded", "err", err)
	}
	e.metrics.setSurgeHeld(len(v.Held))
}

// readSurge reads the surge guard's record (snapshotSurge) into v; the
// bool is false when none is stored.
func (e *Engine) readSurge(v *surgeVerdict) (bool, error) {
	if e.readSurgeSnapshot != nil {
		return e.readSurgeSnapshot(v)
	}
	return e.db.Snapshot(snapshotSurge, v)
}

// surgeWhy says why a line is held for a surge: n of the lines of where
// surge (last, when not "", says it is the verdict of an earlier pass).
func (e *Engine) surgeWhy(last string, n surgeCount, where string) string {
	return fmt.Sprintf("%s%d of %d of %s above 0 rise by more than surge_increase_percent %g at once (more than surge_lines_percent %g), as when the vendor counts twice",
		last, n.Surging, n.Lines, where, e.surgeIncrease(), e.policies.SurgeLinesPercent)
}

// SurgeGuardOn reports whether the policies turn the surge guard on
// (SurgeLinesPercent above 0 and below 100).
func (p Policies) SurgeGuardOn() bool {
	return p.SurgeLinesPercent > 0 && p.SurgeLinesPercent < 100
}

// SurgeLine is a line the surge guard holds: its customer, service, and
// the units it is held at (Current) and would be set to (Desired).
type SurgeLine struct {
	CustomerID string `json:"customer_id"`
	ServiceID  string `json:"service_id"`
	Current    int64  `json:"current"`
	Desired    int64  `json:"desired"`
}

// SurgeRecord is what the state database records of the lines the surge
// guard holds, as the last pass that wrote left it: a pass over all
// customers, or a pass for one customer since (an approval of one line on
// the status page), which replaces its customer's lines.
type SurgeRecord struct {
	// SurgeHold gives the number of lines Held, their review code and
	// their billing month: the code a pass over all customers of Period
	// computes while it holds exactly these lines at these units (the
	// code of the last such pass's plan is another once lines were
	// approved one by one since).
	SurgeHold
	// Held are the lines the review code covers, by customer and
	// service.
	Held []SurgeLine `json:"held"`
	// Undecided are lines kept held because the last pass could not
	// decide them (their customer or line failed): no review code covers
	// them until a pass decides them.
	Undecided []SurgeLine `json:"undecided,omitempty"`
}

// ReadSurgeRecord returns the surge guard's record in db, or nil when it
// holds no line.
func ReadSurgeRecord(db *state.DB) (*SurgeRecord, error) {
	var v surgeVerdict
	if _, err := db.Snapshot(snapshotSurge, &v); err != nil {
		return nil, err
	}
	if len(v.Held) == 0 {
		return nil, nil
	}
	r := &SurgeRecord{SurgeHold: SurgeHold{Period: v.Period}}
	var reviewed []surgeLine
	for _, l := range v.Held {
		sl := SurgeLine{CustomerID: l.Customer, ServiceID: l.Service, Current: l.Current, Desired: l.Desired}
		if l.Undecided {
			r.Undecided = append(r.Undecided, sl)
			continue
		}
		l.Undecided = false
		reviewed = append(reviewed, l)
		r.Held = append(r.Held, sl)
	}
	r.Lines, r.Review = len(reviewed), surgeReview(v.Period, reviewed)
	return r, nil
}

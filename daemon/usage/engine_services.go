package usage

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// preloadServices lets a backend whose writes copy details of the catalog
// service they write (psa.ServicePreloader: Kaseya BMS) have them ready
// before the first of jobs is sent: it hands the backend the services
// recorded by earlier passes (catalog_services in the state database),
// which the backend takes while they are fresh, and records what the
// backend reads. A pass in a process of its own (psa-syncd sync) so reads
// the catalog once per the backend's time to live, not once per process.
// Nothing here fails the pass: a service not ready is read by its writes.
func (e *Engine) preloadServices(ctx context.Context, log *slog.Logger, jobs []*writeJob) {
	sp, ok := e.be.(psa.ServicePreloader)
	if !ok {
		return
	}
	var ids []string
	for _, j := range jobs {
		ids = append(ids, j.c.ServiceID)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	sys := e.be.System()
	recorded, err := e.db.CatalogServices(sys, ids)
	if err != nil {
		log.Warn("Could not read the catalog services of earlier passes; reading them again", "err", err)
	}
	kept := make([]psa.KeptService, 0, len(recorded))
	for _, s := range recorded {
		kept = append(kept, psa.KeptService{ReadAt: s.ReadAt, Service: psa.Service{ID: s.ServiceID, Name: s.Name,
			Description: s.Description, UnitPrice: s.UnitPrice, UnitCost: s.UnitCost}})
	}
	read, err := sp.PreloadServices(ctx, ids, kept)
	if err != nil {
		log.Warn("Could not read the catalog services before the writes; each write reads its own", "err", err)
	}
	services := make([]state.CatalogService, 0, len(read))
	for _, s := range read {
		services = append(services, state.CatalogService{System: sys, ServiceID: s.ID, Name: s.Name, Description: s.Description,
			UnitPrice: s.UnitPrice, UnitCost: s.UnitCost, ReadAt: s.ReadAt.UTC()})
	}
	if err := e.db.PutCatalogServices(services); err != nil {
		log.Warn("Could not record the catalog services; the next pass reads them again", "err", err)
	}
}

// recentServiceRead is how long after this process read a service a plan
// takes it as read (checkServices): the impact report's second plan and a
// status page opened again read none again.
const recentServiceRead = 9 * time.Minute

// newLineServiceFresh reports whether a line new on a contract reads its
// service to be written, and for how long after a read of the service by
// this process the engine takes it to be in hand for that write: the
// backend copies the catalog price onto a new line (Autotask's contract
// services, ConnectWise's additions) and keeps the prices its bulk read
// returned for a while (psa.ServicePriceKeeper), otherwise reading the
// service alone. The engine takes a minute less than the backend keeps
// them, so that a line handed to the writer just before that time is up
// still finds the price kept.
func (e *Engine) newLineServiceFresh() (time.Duration, bool) {
	if _, ok := e.be.(psa.BulkReader); !ok {
		return 0, false
	}
	pk, ok := e.be.(psa.ServicePriceKeeper)
	if !ok {
		return 0, false
	}
	fresh := pk.ServicePricesKept() - time.Minute
	return fresh, fresh > 0
}

// newLineBatch holds the customers of a pass whose updates add a line of
// a service not read within newLineServiceFresh to a contract: they go to
// the early writer once the services of the whole chunk of contracts are
// read in bulk (readNewLineServices). It keeps where each customer's
// changes start in the plan's, as recheckBatch does.
type newLineBatch struct {
	cps   []*customerPass
	first []int
}

// hand gives the updates of customer cp, whose changes start at first in
// the plan's, to the early writer at once, or keeps them in the batch
// when they add a line of a service not in hand (unreadNewLineServices).
func (b *newLineBatch) hand(e *Engine, p *pass, cp *customerPass, first int) {
	changes := p.plan.Changes[first : first+cp.nChanges]
	if len(e.unreadNewLineServices(changes, nil)) == 0 {
		p.early.add(p.early.customerJobs(cp, changes, p.lines))
		cp.written = true
		return
	}
	b.cps, b.first = append(b.cps, cp), append(b.first, first)
}

// flush reads the services of the batch's new lines and hands the
// customers' updates to the early writer; the batch is then empty.
func (b *newLineBatch) flush(ctx context.Context, e *Engine, p *pass) {
	if len(b.cps) == 0 {
		return
	}
	e.handEarly(ctx, p, b.cps, b.first)
	*b = newLineBatch{}
}

// handEarly reads the services of the lines that customers cps, whose
// changes start at first[i] in the plan's, add to their contracts
// (readNewLineServices), and hands the updates of those that still pass
// to the early writer.
func (e *Engine) handEarly(ctx context.Context, p *pass, cps []*customerPass, first []int) {
	changes := make([][]Change, len(cps))
	for i, cp := range cps {
		changes[i] = p.plan.Changes[first[i] : first[i]+cp.nChanges]
	}
	e.readNewLineServices(ctx, cps, changes)
	for i, cp := range cps {
		if cp.err == nil {
			p.early.add(p.early.customerJobs(cp, changes[i], p.lines))
			cp.written = true
		}
	}
}

// unreadNewLineServices adds to seen, and returns, the services of the
// lines that changes add to their contracts (updates of a line the read
// did not show) on a PSA whose new lines read their service, when no read
// of the service in this process is newer than newLineServiceFresh.
func (e *Engine) unreadNewLineServices(changes []Change, seen map[string]bool) []string {
	fresh, ok := e.newLineServiceFresh()
	if !ok {
		return nil
	}
	sys, now := e.be.System(), e.now()
	var ids []string
	for i := range changes {
		c := &changes[i]
		if c.Action != ActionUpdate || c.CurrentKnown || seen[c.ServiceID] || slices.Contains(ids, c.ServiceID) {
			continue
		}
		if s, ok := e.terms.service(sys, c.ServiceID); ok && s.kept {
			if age := now.Sub(s.readAt); age >= 0 && age < fresh {
				continue
			}
		}
		ids = append(ids, c.ServiceID)
	}
	for _, id := range ids {
		if seen != nil {
			seen[id] = true
		}
	}
	return ids
}

// readNewLineServices reads in bulk, before the writes of customers cps
// (changes[i] are those of cps[i]), the services of the lines
// they add to their contracts that were not read within
// newLineServiceFresh (unreadNewLineServices): one Autotask query per 500
// services (one ConnectWise catalog read per 100 items), per chunk of
// contracts decided, where each new line would otherwise read its service
// alone (GET /Services/{id}, GET /procurement/catalog/{id}, once per 10
// minutes per service). The backend keeps the prices read for the writes.
// A new line of a service the read finds inactive fails as checkServices'
// lines do, and nothing is posted for it. What is read is kept in e.terms
// and in its snapshot. A read that fails is logged, and the writes read
// their services alone, as before.
func (e *Engine) readNewLineServices(ctx context.Context, cps []*customerPass, changes [][]Change) {
	seen := map[string]bool{}
	var ids []string
	for i, cp := range cps {
		if cp.err == nil && !cp.written {
			ids = append(ids, e.unreadNewLineServices(changes[i], seen)...)
		}
	}
	if len(ids) == 0 {
		return
	}
	br, ok := e.be.(psa.BulkReader)
	if !ok {
		return
	}
	got, ok := e.readServices(ctx, br, ids, "Could not read the services of the lines new on their contracts; each is read alone when written")
	if !ok {
		return
	}
	for i, cp := range cps {
		if cp.err != nil || cp.written {
			continue
		}
		for j := range changes[i] {
			c := &changes[i][j]
			if s := got[c.ServiceID]; s != nil && !s.Active && c.Action == ActionUpdate && !c.CurrentKnown {
				cp.fail(j, e.inactiveServiceError(c, serviceTerm{name: s.Name}), c)
			}
		}
	}
}

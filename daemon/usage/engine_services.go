package usage

import (
	"context"
	"log/slog"
	"slices"

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

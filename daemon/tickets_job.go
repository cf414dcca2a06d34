package daemon

import (
	"context"
	"errors"
	"fmt"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophos"
	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// ErrNoTicketRouting is returned by TicketPass when the export has no
// ticket routing (no psa_ticket_routing resource): ticket sync is off.
var ErrNoTicketRouting = errors.New("daemon: the mapping export has no ticket routing (psa_ticket_routing); ticket sync is off")

// TicketPass runs one ticket pass (package tickets) with the running
// configuration and export, for the Sophos customers whose mapping has
// ticket_sync on. With dryRun, or while the export switches the integration
// off, it writes nothing and reports what it would create and close.
//
// Ticket passes are independent of usage passes (their records and intents
// are their own); callers run one ticket pass at a time. The scheduler
// does not call it yet.
func (d *Daemon) TicketPass(ctx context.Context, dryRun bool) (tickets.Report, error) {
	snap := d.exp.Load()
	if snap == nil {
		return tickets.Report{}, errors.New("daemon: no valid mapping export loaded")
	}
	doc := snap.doc
	if doc.Tickets == nil {
		return tickets.Report{}, ErrNoTicketRouting
	}
	cfg := d.cfg.Load()
	cl := d.clients.Load()
	t, ok := cl.backend.(psa.Ticketer)
	if !ok {
		return tickets.Report{}, fmt.Errorf("daemon: the %s backend cannot create tickets", cfg.PSA.System)
	}
	src, ok := cl.source.(*sophos.Source)
	if !ok {
		return tickets.Report{}, fmt.Errorf("daemon: ticket sync reads Sophos Central alerts, but the configured source is %q", cfg.Source.Type)
	}
	eng, err := tickets.New(tickets.Config{
		System: cfg.PSA.System, PSA: t, Store: d.db, Alerts: tickets.NewSophosAlerts(src.Client()), Routing: *doc.Tickets,
		Now: d.now, Logger: d.logger.With("component", "tickets", "system", string(cfg.PSA.System)),
	})
	if err != nil {
		return tickets.Report{}, err
	}
	if doc.Integration != nil && !doc.Integration.Enabled {
		dryRun = true
	}
	var customers []tickets.Customer
	for _, m := range doc.CustomerMappings {
		if m.TicketSync && m.Source == SourceSophos {
			customers = append(customers, tickets.Customer{
				Source: m.Source, CustomerID: m.CustomerID, CustomerName: m.CustomerName, CompanyID: m.CompanyID, ContractID: m.ContractID,
			})
		}
	}
	return eng.Pass(ctx, customers, dryRun)
}

package daemon

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// ticketTermsTTL is how long the ticket passes keep the dates of a
// contract they read (ticketTerms): a contract record read once a day.
const ticketTermsTTL = 24 * time.Hour

// snapshotTicketTerms is the state snapshot of ticketTerms: a list of
// ticketTerm.
const snapshotTicketTerms = "ticket-contract-terms"

// ticketTerms keeps, across the ticket passes, the start and end dates of
// the contracts of the customers with ticket sync on and usage sync off
// whose mapping names a renewal (next_contract_id): no usage pass plans
// them, so the ticket passes read the two contracts themselves to file
// tickets on the one in force, at most once a day (ticketTermsTTL). They
// are kept in the state database too, so that psa-syncd tickets, a process
// of its own per pass, and a restarted daemon read them once a day as well.
type ticketTerms struct {
	mu     sync.Mutex
	m      map[termKey]ticketTerm
	loaded bool
}

type termKey struct {
	system psa.System
	id     string
}

// ticketTerm is what a read of a contract said of its dates, and when.
type ticketTerm struct {
	System psa.System `json:"system"`
	ID     string     `json:"id"`
	// Found is false for a contract the read did not find: deleted, or
	// out of the API user's reach.
	Found  bool      `json:"found"`
	Start  time.Time `json:"start,omitzero"`
	End    time.Time `json:"end,omitzero"`
	ReadAt time.Time `json:"read_at"`
}

// unplannedRenewals returns, of the mappings ms (ticket sync on, usage
// sync off, a renewal named), the keys (ticketStatusKey) of those whose
// renewal is in force today (a day in psa-syncd's time zone), as a usage
// pass would choose it on that day (usage's selectContract): the renewal
// has started, or contract_id has ended; while both are in force, or a
// date is unknown, contract_id, on which a ticket can still be filed.
//
// The contracts' records come from the PSA's bulk read (psa.BulkReader:
// one request per 500 Autotask contracts or 100 ConnectWise agreements;
// on Kaseya BMS one per contract), those not read within ticketTermsTTL
// only. A read that fails leaves the dates read before (a customer
// without them keeps contract_id), and the next pass reads again. It
// also returns, by key (ticketStatusKey), the error of each customer
// whose contracts the failed read was for, which the ticket pass fails
// the customer with: a ticket filed on a contract that has ended rolls
// its labour up to it, and a read that keeps failing is to show where a
// failing ticket sync does (the customer's ticket status,
// psa_sync_ticket_last_success_timestamp_seconds,
// PsaSyncTicketSyncFailing), not in a log line each pass only.
// A dry run keeps what it read in memory only.
func (d *Daemon) unplannedRenewals(ctx context.Context, backend psa.Backend, ms []export.CustomerMapping, today string,
	dryRun bool) (map[string]bool, map[string]error) {
	tt := &d.ticketTerms
	tt.mu.Lock()
	defer tt.mu.Unlock()
	sys := backend.System()
	now := d.now()
	if !tt.loaded {
		tt.loaded = true
		var stored []ticketTerm
		if _, err := d.db.Snapshot(snapshotTicketTerms, &stored); err != nil {
			d.logger.Warn("Could not restore the dates of the contracts tickets are filed on; reading them from the PSA again", "err", err)
		}
		tt.m = make(map[termKey]ticketTerm, len(stored))
		for _, t := range stored {
			tt.m[termKey{t.System, t.ID}] = t
		}
	}
	var ids []string
	want, stale := map[termKey]bool{}, map[termKey]bool{}
	for _, m := range ms {
		for _, id := range []string{m.ContractID, m.NextContractID} {
			k := termKey{sys, id}
			if want[k] {
				continue
			}
			want[k] = true
			if t, ok := tt.m[k]; !ok || now.Sub(t.ReadAt) < 0 || now.Sub(t.ReadAt) >= ticketTermsTTL {
				ids, stale[k] = append(ids, id), true
			}
		}
	}
	var readErr error
	if br, ok := backend.(psa.BulkReader); ok && len(ids) > 0 {
		got, err := br.GetContracts(ctx, ids)
		if readErr = err; err != nil {
			d.logger.Warn("Could not read the contracts of customers with a renewal and usage sync off; their tickets are filed as the dates read before say, "+
				"or on contract_id", "contracts", len(ids), "err", err)
		} else {
			for _, id := range ids {
				t := ticketTerm{System: sys, ID: id, ReadAt: now.UTC()}
				if c := got[id]; c != nil {
					t.Found, t.Start, t.End = true, c.StartDate, c.EndDate
				}
				tt.m[termKey{sys, id}] = t
			}
			// Only the contracts mapped so are kept: a renewal merged
			// into contract_id drops its dates.
			stored := make([]ticketTerm, 0, len(want))
			for k := range tt.m {
				if !want[k] {
					delete(tt.m, k)
					continue
				}
				stored = append(stored, tt.m[k])
			}
			if !dryRun {
				if err := d.db.PutSnapshot(snapshotTicketTerms, stored); err != nil {
					d.logger.Warn("Could not keep the dates of the contracts tickets are filed on in the state database; the next process reads them again", "err", err)
				}
			}
		}
	}
	renewed, unread := map[string]bool{}, map[string]error{}
	for _, m := range ms {
		key := ticketStatusKey(m.Source, m.CustomerID)
		old, next := tt.m[termKey{sys, m.ContractID}], tt.m[termKey{sys, m.NextContractID}]
		oldEnded := old.Found && !old.End.IsZero() && old.End.Format(time.DateOnly) < today
		oldInForce := old.Found && (old.End.IsZero() || old.End.Format(time.DateOnly) >= today)
		nextStarted := next.Found && !next.Start.IsZero() && next.Start.Format(time.DateOnly) <= today
		if oldEnded || nextStarted && !oldInForce {
			renewed[key] = true
		}
		if readErr == nil || !stale[termKey{sys, m.ContractID}] && !stale[termKey{sys, m.NextContractID}] {
			continue
		}
		on, which := m.ContractID, "contract_id"
		if renewed[key] {
			on, which = m.NextContractID, "next_contract_id"
		}
		by := "no dates read yet"
		read := old.ReadAt
		if read.IsZero() || !next.ReadAt.IsZero() && next.ReadAt.Before(read) {
			read = next.ReadAt
		}
		if !read.IsZero() {
			by = "by the dates read " + read.UTC().Format(time.RFC3339)
		}
		unread[key] = fmt.Errorf("reading contracts %s (contract_id) and %s (next_contract_id), to file tickets on the one in force today: %w; "+
			"they are filed on contract %s (%s; %s) until a pass reads them", m.ContractID, m.NextContractID, readErr, on, which, by)
	}
	return renewed, unread
}

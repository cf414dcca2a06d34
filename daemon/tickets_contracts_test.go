package daemon

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// ttRenewal adds to Acme's company in sim a contract "Managed 2026" from
// oldStart to oldEnd and its renewal "Managed 2027", a year from
// nextStart, and has d load Acme's mapping with them as its contract_id
// and next_contract_id, usage sync off (see ttPutCustomer).
func ttRenewal(t *testing.T, d *Daemon, sim *psatest.Server, oldStart, oldEnd, nextStart time.Time) (old, next string) {
	t.Helper()
	company := sim.Autotask().Companies()[0].ID
	old = dtID(sim.Autotask().AddContract(psatest.AutotaskContract{CompanyID: company, Name: "Managed 2026", StartDate: oldStart, EndDate: oldEnd}))
	next = dtID(sim.Autotask().AddContract(psatest.AutotaskContract{CompanyID: company, Name: "Managed 2027",
		StartDate: nextStart, EndDate: nextStart.AddDate(1, 0, -1)}))
	acme, _ := d.exp.Load().doc.Customer("sophos", ttAcme)
	acme.ContractID, acme.NextContractID, acme.UsageSync = old, next, false
	ttPutCustomer(t, d, acme)
	return old, next
}

// TestDaemon_ticketsOfACustomerWithoutUsageSync: a customer with ticket
// sync on and usage sync off, whose mapping names a renewal, is in no
// usage plan: its tickets are filed on the contract in force as the two
// contracts' dates say, read by the ticket pass once a day (kept in the
// state database for the next process), as a usage pass would choose it.
func TestDaemon_ticketsOfACustomerWithoutUsageSync(t *testing.T) {
	t.Parallel()
	routing := &export.Tickets{Enabled: true, QueueID: dtID(psatest.AutotaskQueueMonitoringAlert), ClosedStatusID: "5", OnResolve: export.OnResolveClose}
	day := func(s string) time.Time {
		d, err := time.Parse(time.DateOnly, s)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	for _, tc := range []struct {
		name                        string
		oldStart, oldEnd, nextStart string
		want                        string // "old" or "next"
	}{
		{"renewalStarted", "2026-01-01", "2026-12-31", "2027-01-01", "next"},
		{"renewalStartsToday", "2026-01-05", "2027-01-04", "2027-01-05", "next"},
		{"notYet", "2026-02-01", "2027-01-31", "2027-02-01", "old"},
		// Dates that overlap: contract_id is still in force, and a ticket
		// can be filed on it.
		{"bothInForce", "2026-01-01", "2027-03-31", "2027-01-01", "old"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			now := time.Date(2027, 1, 5, 10, 0, 0, 0, time.UTC)
			d, sim, sop := ttSetupOptions(t, routing, true, "", Options{Now: func() time.Time {
				mu.Lock()
				defer mu.Unlock()
				return now
			}})
			old, next := ttRenewal(t, d, sim, day(tc.oldStart), day(tc.oldEnd), day(tc.nextStart))
			contractReads := func() int {
				n := 0
				for _, r := range sim.Requests() {
					if r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/Contracts/query") {
						n++
					}
				}
				return n
			}

			sop.AddAlert(ttAcme, sophostest.Alert{Severity: "high", Description: "Malware on PC-1"})
			if rep, err := d.TicketPass(t.Context(), false); err != nil || rep.Totals().Created != 1 {
				t.Fatalf("TicketPass = %+v, %v", rep.Totals(), err)
			}
			want := map[string]string{"old": old, "next": next}[tc.want]
			if tk := sim.Autotask().Tickets(); len(tk) != 1 || dtID(tk[0].ContractID) != want {
				t.Errorf("tickets = %+v, want one on contract %s (%s)", tk, want, tc.want)
			}
			if n := contractReads(); n != 1 {
				t.Errorf("contract reads of the first pass = %d, want 1 (both contracts in one)", n)
			}
			// The same day, in this process and in the next (the dates
			// kept in the state database): not read again.
			if _, err := d.TicketPass(t.Context(), false); err != nil {
				t.Fatal(err)
			}
			d.ticketTerms = ticketTerms{}
			sop.AddAlert(ttAcme, sophostest.Alert{Severity: "high", Description: "Malware on PC-2"})
			if rep, err := d.TicketPass(t.Context(), false); err != nil || rep.Totals().Created != 1 {
				t.Fatalf("TicketPass in a new process = %+v, %v", rep.Totals(), err)
			}
			for _, tk := range sim.Autotask().Tickets() {
				if dtID(tk.ContractID) != want {
					t.Errorf("ticket %d filed on contract %d, want %s (%s)", tk.ID, tk.ContractID, want, tc.want)
				}
			}
			if n := contractReads(); n != 1 {
				t.Errorf("contract reads after two more passes the same day, one of a new process = %d, want 1", n)
			}
			// A day later: read again.
			mu.Lock()
			now = now.Add(25 * time.Hour)
			mu.Unlock()
			if _, err := d.TicketPass(t.Context(), false); err != nil {
				t.Fatal(err)
			}
			if n := contractReads(); n != 2 {
				t.Errorf("contract reads after a pass a day later = %d, want 2", n)
			}
		})
	}
}

// TestDaemon_ticketContractsUnread: when the ticket pass cannot read the
// contracts of a customer with usage sync off and a renewal, its tickets
// are filed all the same (on the contract the dates read before say, or
// contract_id), but the customer fails, with an error naming the contracts
// and the one filed on: the pass is not a success
// (psa_sync_ticket_last_success_timestamp_seconds stays, and
// PsaSyncTicketSyncFailing fires on a read that keeps failing), rather than
// a warning in the log each pass. A pass that reads them succeeds again.
func TestDaemon_ticketContractsUnread(t *testing.T) {
	t.Parallel()
	routing := &export.Tickets{Enabled: true, QueueID: dtID(psatest.AutotaskQueueMonitoringAlert), ClosedStatusID: "5", OnResolve: export.OnResolveClose}
	var mu sync.Mutex
	now := time.Date(2027, 1, 5, 10, 0, 0, 0, time.UTC)
	d, sim, sop := ttSetupOptions(t, routing, true, "", Options{Now: func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}})
	old, next := ttRenewal(t, d, sim, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC),
		time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC))
	readFails := psatest.Fault{Method: http.MethodPost, Path: "/ATServicesRest/V1.0/Contracts/query", Status: http.StatusBadRequest,
		Body: `{"errors":["The query is refused."]}`}
	alerts := 0
	pass := func(wantContract string) TicketStatus {
		t.Helper()
		alerts++
		sop.AddAlert(ttAcme, sophostest.Alert{Severity: "high", Description: fmt.Sprintf("Malware on PC-%d", alerts)})
		if _, err := d.recordedTicketPass(t.Context(), d.exp.Load().doc, false); err != nil {
			t.Fatal(err)
		}
		tk := sim.Autotask().Tickets()
		if len(tk) != alerts || dtID(tk[alerts-1].ContractID) != wantContract {
			t.Errorf("tickets = %+v, want the new one on contract %s", tk, wantContract)
		}
		st, err := d.TicketStatuses()
		if err != nil {
			t.Fatal(err)
		}
		return st[ticketStatusKey("sophos", ttAcme)]
	}

	sim.AddFault(readFails)
	st := pass(old)
	if want := fmt.Sprintf("reading contracts %s (contract_id) and %s (next_contract_id), to file tickets on the one in force today", old, next); st.Result != "failed" ||
		!strings.Contains(st.Error, want) || !strings.Contains(st.Error, "The query is refused") ||
		!strings.Contains(st.Error, fmt.Sprintf("filed on contract %s (contract_id; no dates read yet)", old)) {
		t.Errorf("Acme's ticket status, the read failing = %+v, want failed: %q, filed on contract_id", st, want)
	}
	if got := testutil.ToFloat64(d.metrics.TicketLastSuccessTimestamp); got != 0 {
		t.Errorf("last ticket success = %v, want unset after a pass that could not read the contracts", got)
	}

	sim.ClearFaults()
	if st := pass(next); st.Result != "succeeded" || st.Error != "" {
		t.Errorf("Acme's ticket status, the contracts read = %+v, want succeeded", st)
	}
	success := testutil.ToFloat64(d.metrics.TicketLastSuccessTimestamp)
	if success == 0 {
		t.Error("last ticket success unset after the pass that read the contracts")
	}

	// A day later the read fails again: the dates read the day before
	// stand, and the customer fails again.
	mu.Lock()
	now = now.Add(25 * time.Hour)
	mu.Unlock()
	sim.AddFault(readFails)
	if st := pass(next); st.Result != "failed" || !strings.Contains(st.Error, fmt.Sprintf("filed on contract %s (next_contract_id; by the dates read 2027-01-05T10:00:00Z)", next)) {
		t.Errorf("Acme's ticket status, the read failing a day later = %+v, want failed, filed on next_contract_id as read the day before", st)
	}
	if got := testutil.ToFloat64(d.metrics.TicketLastSuccessTimestamp); got != success {
		t.Errorf("last ticket success = %v, want %v, the last pass that read the contracts", got, success)
	}
}

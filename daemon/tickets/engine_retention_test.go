package tickets_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// TestEngine_forgetsOldClosedRecords: a pass deletes the records of tickets
// closed longer ago than the retention (and the reopen window) whose alerts
// are not open, so that the records every pass reads for a customer do not
// grow with every alert ever filed; it keeps the records of open tickets,
// of tickets closed recently, and of those whose alert is open; a dry run
// deletes nothing.
func TestEngine_forgetsOldClosedRecords(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	e.retention = 400 * 24 * time.Hour
	eng := e.engine(routings[e.system])
	raise := func(desc string) string {
		return e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: desc}).ID
	}
	old, stillOpen, recent, byTech := raise("Malware on PC-1"), raise("Malware on PC-2"), raise("Malware on PC-3"), raise("Malware on PC-4")
	if tot := e.pass(eng).Totals(); tot.Created != 4 || tot.Err != nil {
		t.Fatalf("first pass = %+v, want 4 tickets", tot)
	}
	// A technician closes PC-4's ticket; its alert clears (psa-syncd finds
	// the ticket closed) and comes back. Recorded as closed in the PSA
	// while its alert was open (a close psa-syncd saw then, such as a
	// technician's close of a reopened ticket, TestEngine_reopenUnsettled),
	// that ticket is never reopened or replaced while the alert is open,
	// however long ago it was closed.
	for _, tk := range e.psaSim.Autotask().Tickets() {
		if strings.Contains(tk.Title, "PC-4") {
			e.psaSim.Autotask().SetTicketStatus(tk.ID, "Complete")
		}
	}
	e.sophos.ResolveAlert(acme, old)
	e.sophos.ResolveAlert(acme, byTech)
	if tot := e.pass(eng).Totals(); tot.Closed != 1 {
		t.Fatalf("pass after resolving two alerts = %+v, want one ticket closed, the other found closed in the PSA", tot)
	}
	r := e.record(byTech)
	if r.State != tickets.StateClosed || r.ClosedBy != tickets.ClosedByPSAResolved {
		t.Fatalf("record of the ticket a technician closed = %+v, want closed in the PSA when its alert was resolved", r)
	}
	r.ClosedBy = tickets.ClosedByPSA
	if err := e.db.PutTicketRecord(r); err != nil {
		t.Fatal(err)
	}
	e.sophos.AddAlert(acme, sophostest.Alert{ID: byTech, Severity: "high", Description: "Malware on PC-4"})
	if tot := e.pass(eng).Totals(); tot.Created != 0 || tot.Reopened != 0 {
		t.Fatalf("pass after PC-4's alert came back = %+v, want its ticket neither reopened nor replaced", tot)
	}

	e.now = e.now.AddDate(1, 2, 0)
	e.sophos.ResolveAlert(acme, recent)
	e.dryPass(eng)
	if records, err := e.db.TicketRecords("sophos", acme); err != nil || len(records) != 4 {
		t.Fatalf("records after a dry run = %d, %v; want all 4 kept", len(records), err)
	}
	if tot := e.pass(eng).Totals(); tot.Closed != 1 || tot.Err != nil {
		t.Fatalf("pass 14 months later = %+v, want the recent alert's ticket closed", tot)
	}
	records, err := e.db.TicketRecords("sophos", acme)
	if err != nil {
		t.Fatal(err)
	}
	kept := map[string]string{}
	for _, r := range records {
		kept[r.AlertKey] = r.State
	}
	if _, ok := kept[old]; ok || kept[stillOpen] != tickets.StateOpen || kept[recent] != tickets.StateClosed || kept[byTech] != tickets.StateClosed || len(kept) != 3 {
		t.Errorf("records after a pass 14 months later = %v; want the ticket closed 14 months ago forgotten, the open one, the one just closed "+
			"and the one closed in the PSA while its alert is open kept", kept)
	}
	if tot := e.pass(eng).Totals(); tot.Created != 0 || tot.Adopted != 0 || tot.Reopened != 0 {
		t.Errorf("the pass after = %+v, want nothing filed again", tot)
	}
}

// TestEngine_forgetsOldRefusedRecords: the record of a create the PSA
// refused is deleted as a closed ticket's is, once the refusal is older
// than the retention and its alert is not open: an alert refused and
// resolved is never filed, and its record decided nothing more. The record
// of a refused create whose alert is open (retried daily, reported every
// pass) and of one refused recently stay; a dry run deletes nothing.
func TestEngine_forgetsOldRefusedRecords(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	e.retention = 400 * 24 * time.Hour
	eng := e.engine(routings[e.system])
	refused := func(desc string) string {
		id := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: desc}).ID
		e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: "/ATServicesRest/V1.0/Tickets", BodyContains: "sc:" + id,
			Status: http.StatusInternalServerError, Body: `{"errors":["The queue is inactive."]}`})
		return id
	}
	old, stillOpen := refused("Malware on PC-1"), refused("Malware on PC-2")
	if tot := e.pass(eng).Totals(); tot.Failed != 2 {
		t.Fatalf("first pass = %+v, want 2 creates refused", tot)
	}
	e.sophos.ResolveAlert(acme, old)
	e.now = e.now.AddDate(1, 1, 0)
	recent := refused("Malware on PC-3")
	if tot := e.pass(eng).Totals(); tot.Failed != 2 {
		t.Fatalf("pass 13 months later = %+v, want the new alert's create and the open one's retry refused", tot)
	}
	e.sophos.ResolveAlert(acme, recent)

	e.now = e.now.AddDate(0, 1, 0)
	e.dryPass(eng)
	if records, err := e.db.TicketRecords("sophos", acme); err != nil || len(records) != 3 {
		t.Fatalf("records after a dry run = %d, %v; want all 3 kept", len(records), err)
	}
	e.pass(eng)
	records, err := e.db.TicketRecords("sophos", acme)
	if err != nil {
		t.Fatal(err)
	}
	kept := map[string]string{}
	for _, r := range records {
		kept[r.AlertKey] = r.State
	}
	if _, ok := kept[old]; ok || kept[stillOpen] != tickets.StateFailed || kept[recent] != tickets.StateFailed || len(kept) != 2 {
		t.Errorf("records after a pass 14 months later = %v; want the create refused 14 months ago for a resolved alert forgotten, "+
			"the refused ones of the open alert and of the alert refused a month ago kept", kept)
	}
	if len(e.tickets()) != 0 {
		t.Errorf("tickets = %+v, want none", e.tickets())
	}
}

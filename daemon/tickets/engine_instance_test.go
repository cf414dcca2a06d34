package tickets_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// engineAt is env.engine for an engine connected to the PSA instance
// instance.
func (e *env) engineAt(routing export.Tickets, instance string) *tickets.Engine {
	e.t.Helper()
	eng, err := tickets.New(tickets.Config{System: e.system, Instance: instance, PSA: e.backend, Store: e.db, Alerts: e.sophosAlerts(),
		Routing: routing, Now: func() time.Time { return e.now }})
	if err != nil {
		e.t.Fatal(err)
	}
	return eng
}

// record returns the stored record of acme's alertKey.
func (e *env) record(alertKey string) tickets.Record {
	e.t.Helper()
	records, err := e.db.TicketRecords("sophos", acme)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, r := range records {
		if r.AlertKey == alertKey {
			return r
		}
	}
	e.t.Fatalf("no ticket record for alert %s", alertKey)
	return tickets.Record{}
}

// requestsNaming returns the PSA requests whose path, query or body holds
// s.
func (e *env) requestsNaming(s string) []string {
	var out []string
	for _, r := range e.psaSim.Requests() {
		if strings.Contains(r.Path, s) || strings.Contains(r.RawQuery, s) || strings.Contains(string(r.Body), s) {
			out = append(out, r.Method+" "+r.Path)
		}
	}
	return out
}

// A state database kept across a switch from Autotask to ConnectWise
// holds the Autotask records. Their ticket ids mean nothing in
// ConnectWise: a record of a resolved alert must not close the
// ConnectWise ticket that happens to have its id, an open intent must not
// be searched for, and both are reported and left as they are. An alert
// still open gets a ConnectWise ticket, whose record replaces the Autotask
// one.
func TestEngine_recordsOfAnotherSystemLeftAlone(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemConnectWise)
	// A technician's ticket in ConnectWise, nothing to do with Sophos.
	unrelated, err := e.backend.CreateTicket(t.Context(), psa.CreateTicketRequest{
		CompanyID: e.company, Title: "Printer on floor 2 jammed", ExternalRef: "manual:1",
		Routing: psa.TicketRouting{QueueID: id(psatest.ConnectWiseBoardAlerts)},
	})
	if err != nil {
		t.Fatal(err)
	}
	const autotaskInstance = "ci:29683541@webservices5.autotask.net"
	old := e.now.Add(-48 * time.Hour)
	resolved := tickets.Record{Source: "sophos", CustomerID: acme, AlertKey: "0b6c5a1e-old-alert", Ref: "sc:0b6c5a1e-old-alert", Generation: 1,
		System: string(psa.SystemAutotask), Instance: autotaskInstance, CompanyID: "174", TicketID: unrelated.ID, Number: "T20261101.0001",
		State: tickets.StateOpen, Severity: "high", Created: old, Updated: old}
	intent := tickets.Record{Source: "sophos", CustomerID: acme, AlertKey: "7d2e9f30-old-intent", Ref: "sc:7d2e9f30-old-intent", Generation: 1,
		System: string(psa.SystemAutotask), Instance: autotaskInstance, CompanyID: "174", State: tickets.StateCreating, Severity: "high",
		Created: old, Updated: old}
	a := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Malware on PC-9"})
	stillOpen := tickets.Record{Source: "sophos", CustomerID: acme, AlertKey: a.ID, Ref: "sc:" + a.ID, Generation: 1,
		System: string(psa.SystemAutotask), Instance: autotaskInstance, CompanyID: "174", TicketID: "7001", State: tickets.StateOpen,
		Severity: "high", Created: old, Updated: old}
	for _, r := range []tickets.Record{resolved, intent, stillOpen} {
		if err := e.db.PutTicketRecord(r); err != nil {
			t.Fatal(err)
		}
	}
	be, ok := e.backend.(psa.Backend)
	if !ok {
		t.Fatalf("the ConnectWise backend %T is no psa.Backend", e.backend)
	}
	instance := be.Instance()
	rep := e.pass(e.engineAt(routings[psa.SystemConnectWise], instance))

	cr := rep.Customers[0]
	if cr.Err != nil || rep.Settled != 0 || cr.Closed != 0 || cr.Created != 1 {
		t.Errorf("pass = settled %d, %+v; want the open alert's ticket created, nothing settled or closed, no error", rep.Settled, cr)
	}
	for _, tk := range e.tickets() {
		if id(tk.id) == unrelated.ID && (tk.closed || len(tk.notes) > 0) {
			t.Errorf("ConnectWise ticket %s (%q), never made by psa-syncd, was changed for an Autotask record: closed %v, notes %q",
				unrelated.ID, tk.title, tk.closed, tk.notes)
		}
	}
	for _, s := range []string{"/tickets/" + unrelated.ID, resolved.Ref, intent.Ref} {
		if reqs := e.requestsNaming(s); len(reqs) > 0 {
			t.Errorf("requests to ConnectWise for an Autotask record (%s): %q", s, reqs)
		}
	}
	for _, want := range []tickets.Record{resolved, intent} {
		if got := e.record(want.AlertKey); got.State != want.State || got.TicketID != want.TicketID || got.Instance != want.Instance {
			t.Errorf("Autotask record %s after the pass = %+v, want it as it was", want.AlertKey, got)
		}
	}
	if got := e.record(a.ID); got.System != string(psa.SystemConnectWise) || got.Instance != instance || got.State != tickets.StateOpen ||
		got.TicketID == stillOpen.TicketID {
		t.Errorf("record of the open alert = %+v, want its new ConnectWise ticket's, at instance %q", got, instance)
	}
	var notice string
	for _, n := range cr.Notices {
		if strings.Contains(n, autotaskInstance) {
			notice = n
		}
	}
	for _, want := range []string{"3 ticket records", "autotask", "T20261101.0001", intent.Ref, "left alone", "connectwise", instance} {
		if !strings.Contains(notice, want) {
			t.Errorf("notice about the Autotask records = %q, want it to contain %q (notices %q)", notice, want, cr.Notices)
		}
	}

	// Next pass: the records left alone are reported once again, and the
	// ConnectWise ticket of the open alert is followed as any other.
	e.sophos.ResolveAlert(acme, a.ID)
	rep = e.pass(e.engineAt(routings[psa.SystemConnectWise], instance))
	if cr := rep.Customers[0]; cr.Closed != 1 || cr.Err != nil || len(cr.Notices) != 1 || !strings.Contains(cr.Notices[0], "2 ticket records") {
		t.Errorf("pass after the alert resolved = %+v, want its ConnectWise ticket closed and one notice about the 2 Autotask records left", cr)
	}
}

// Another tenant of the same system (Autotask tenants share zone hosts)
// is another PSA too. A record of the engine's tenant at another zone host
// (Autotask moved the tenant) is the engine's; so is one written before
// instances were recorded, which gets the engine's instance when it is
// next written.
func TestEngine_recordsOfAnotherInstance(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	ticket := func(title string) string {
		tk, err := e.backend.CreateTicket(t.Context(), psa.CreateTicketRequest{CompanyID: e.company, Title: title, ExternalRef: "manual:" + title,
			Routing: psa.TicketRouting{QueueID: id(psatest.AutotaskQueueMonitoringAlert)}})
		if err != nil {
			t.Fatal(err)
		}
		return tk.ID
	}
	const instance = "ci:2@webservices5.autotask.net"
	old := e.now.Add(-48 * time.Hour)
	records := map[string]tickets.Record{}
	for key, inst := range map[string]string{
		"other-tenant":   "ci:1@webservices5.autotask.net",
		"zone-moved":     "ci:2@webservices14.autotask.net",
		"before-upgrade": "",
	} {
		r := tickets.Record{Source: "sophos", CustomerID: acme, AlertKey: key, Ref: "sc:" + key, Generation: 1, System: string(psa.SystemAutotask),
			Instance: inst, CompanyID: e.company, TicketID: ticket(key), State: tickets.StateOpen, Severity: "high", Created: old, Updated: old}
		if err := e.db.PutTicketRecord(r); err != nil {
			t.Fatal(err)
		}
		records[key] = r
	}
	rep := e.pass(e.engineAt(routings[psa.SystemAutotask], instance))
	if cr := rep.Customers[0]; cr.Closed != 2 || cr.Err != nil {
		t.Errorf("pass = %+v, want the tickets of the zone-moved and the pre-upgrade record closed", cr)
	}
	closed := map[string]bool{}
	for _, tk := range e.tickets() {
		closed[id(tk.id)] = tk.closed
	}
	for key, want := range map[string]bool{"other-tenant": false, "zone-moved": true, "before-upgrade": true} {
		if got := closed[records[key].TicketID]; got != want {
			t.Errorf("ticket of the %s record closed = %v, want %v", key, got, want)
		}
	}
	if got := e.record("other-tenant"); got.State != tickets.StateOpen {
		t.Errorf("record of the other tenant = %+v, want it left open", got)
	}
	for key, want := range map[string]string{"zone-moved": "ci:2@webservices14.autotask.net", "before-upgrade": instance} {
		if got := e.record(key); got.State != tickets.StateClosed || got.Instance != want {
			t.Errorf("%s record = state %q, instance %q; want closed at %q", key, got.State, got.Instance, want)
		}
	}
}

// After a switch of PSA, the records of the old one are reported every
// pass until a pass with Config.ForgetOtherPSA deletes them: its dry run
// lists them and deletes nothing; the pass deletes them all (open, intent,
// closed), lists their tickets, and leaves the current PSA's records as
// they are. Later passes report nothing about them.
func TestEngine_forgetOtherPSA(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemConnectWise)
	const autotaskInstance = "ci:29683541@webservices5.autotask.net"
	old := e.now.Add(-48 * time.Hour)
	var foreign []tickets.Record
	for i, state := range []string{tickets.StateOpen, tickets.StateCreating, tickets.StateClosed, tickets.StateFailed} {
		r := tickets.Record{Source: "sophos", CustomerID: acme, AlertKey: fmt.Sprintf("0b6c5a1e-old-%d", i), Ref: fmt.Sprintf("sc:0b6c5a1e-old-%d", i),
			Generation: 1, System: string(psa.SystemAutotask), Instance: autotaskInstance, CompanyID: "174", State: state, Severity: "high",
			Created: old, Updated: old}
		if state != tickets.StateCreating && state != tickets.StateFailed {
			r.TicketID, r.Number = fmt.Sprint(7000+i), fmt.Sprintf("T20261101.000%d", i)
		}
		if state == tickets.StateClosed {
			r.ClosedBy, r.ClosedAt = tickets.ClosedBySync, old
		}
		foreign = append(foreign, r)
		if err := e.db.PutTicketRecord(r); err != nil {
			t.Fatal(err)
		}
	}
	e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Malware on PC-9"})
	be, ok := e.backend.(psa.Backend)
	if !ok {
		t.Fatalf("the ConnectWise backend %T is no psa.Backend", e.backend)
	}
	instance := be.Instance()
	if tot := e.pass(e.engineAt(routings[psa.SystemConnectWise], instance)).Totals(); tot.Created != 1 || tot.Err != nil {
		t.Fatalf("first pass = %+v, want the open alert's ticket created", tot)
	}
	forgetting, err := tickets.New(tickets.Config{System: e.system, Instance: instance, PSA: e.backend, Store: e.db, Alerts: e.sophosAlerts(),
		Routing: routings[psa.SystemConnectWise], Now: func() time.Time { return e.now }, ForgetOtherPSA: true})
	if err != nil {
		t.Fatal(err)
	}
	notice := func(cr tickets.CustomerReport, verb string) {
		t.Helper()
		var got string
		for _, n := range cr.Notices {
			if strings.Contains(n, autotaskInstance) {
				if got != "" || strings.Contains(n, "left alone") {
					t.Errorf("notices = %q, want one about the Autotask records, saying they %s", cr.Notices, verb)
				}
				got = n
			}
		}
		for _, want := range []string{"4 ticket records", verb, "T20261101.0000", foreign[1].Ref, "close the tickets still open in autotask by hand"} {
			if !strings.Contains(got, want) {
				t.Errorf("notice about the Autotask records = %q, want it to contain %q (notices %q)", got, want, cr.Notices)
			}
		}
	}

	rep, err := forgetting.Pass(t.Context(), e.customers(), true)
	if err != nil {
		t.Fatal(err)
	}
	notice(rep.Customers[0], "would be forgotten")
	if records, err := e.db.TicketRecords("sophos", acme); err != nil || len(records) != 5 {
		t.Fatalf("records after a dry run = %d, %v; want all 5 kept", len(records), err)
	}

	rep = e.pass(forgetting)
	notice(rep.Customers[0], "were forgotten")
	if cr := rep.Customers[0]; cr.Err != nil || cr.Created != 0 {
		t.Errorf("pass forgetting the Autotask records = %+v, want nothing else done", cr)
	}
	records, err := e.db.TicketRecords("sophos", acme)
	if err != nil || len(records) != 1 || records[0].System != string(psa.SystemConnectWise) || records[0].State != tickets.StateOpen {
		t.Fatalf("records after the pass = %+v, %v; want only the ConnectWise ticket's", records, err)
	}
	rep = e.pass(e.engineAt(routings[psa.SystemConnectWise], instance))
	for _, n := range rep.Customers[0].Notices {
		if strings.Contains(n, "autotask") {
			t.Errorf("notice after the Autotask records were forgotten: %q", n)
		}
	}
}

package tickets_test

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// ticketCompanies returns the company (Kaseya BMS: account) of each
// ticket the simulator holds, by ticket id.
func (e *env) ticketCompanies() map[int64]string {
	out := map[int64]string{}
	switch e.system {
	case psa.SystemAutotask:
		for _, t := range e.psaSim.Autotask().Tickets() {
			out[t.ID] = id(t.CompanyID)
		}
	case psa.SystemConnectWise:
		for _, t := range e.psaSim.ConnectWise().Tickets() {
			out[t.ID] = id(t.CompanyID)
		}
	case psa.SystemKaseyaBMS:
		for _, t := range e.psaSim.KaseyaBMS().Tickets() {
			out[int64(t.ID)] = id(int64(t.AccountID))
		}
	}
	return out
}

// description returns the description the ticket was created with
// (ConnectWise: its detail note).
func (e *env) description(ticketID int64) string {
	switch e.system {
	case psa.SystemAutotask:
		for _, t := range e.psaSim.Autotask().Tickets() {
			if t.ID == ticketID {
				return t.Description
			}
		}
	case psa.SystemConnectWise:
		for _, n := range e.psaSim.ConnectWise().TicketNotes(ticketID) {
			if n.Detail {
				return n.Text
			}
		}
	case psa.SystemKaseyaBMS:
		for _, t := range e.psaSim.KaseyaBMS().Tickets() {
			if int64(t.ID) == ticketID {
				return t.Details
			}
		}
	}
	return ""
}

// TestEngine_customerMovedToAnotherCompany checks README's promise for a
// customer mapping moved to another company: new alerts are filed in the
// new company, while the tickets already open stay in the company they
// were filed in (psa-syncd never moves a ticket, nor files a second one for
// their alerts) and are closed there when their alerts are resolved. An
// open summary ticket takes no more alerts in the old company (where the
// new company's technicians would not see them, and labour on it bills
// the old company): it stays there, is closed when its own alerts are
// resolved, and a new summary ticket in the new company, naming the old
// one, takes the alerts over the cap; a notice names both.
func TestEngine_customerMovedToAnotherCompany(t *testing.T) {
	t.Parallel()
	for _, sys := range psa.Systems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, sys)
			eng := e.engineWith(func(r *export.Tickets) { r.MaxPerCustomer = 1 })
			alert := func(i int) sophostest.Alert {
				return e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: fmt.Sprintf("Threat on PC-%03d", i),
					RaisedAt: fmt.Sprintf("2026-11-15T09:%02d:00.000", i)})
			}
			var before []sophostest.Alert
			for i := range 3 {
				before = append(before, alert(i))
			}
			if tot := e.pass(eng).Totals(); tot.Created != 1 || tot.Summarised != 2 || tot.Err != nil {
				t.Fatalf("first pass = %+v, want one ticket and a summary of two", tot)
			}
			old := e.company
			for tid, c := range e.ticketCompanies() {
				if c != old {
					t.Fatalf("ticket %d filed in company %s, want %s", tid, c, old)
				}
			}
			summaries := func() []psaTicket {
				var out []psaTicket
				for _, tk := range e.tickets() {
					if strings.Contains(tk.title, "Alert storm") {
						out = append(out, tk)
					}
				}
				return out
			}
			oldSummary := summaries()[0]

			// The mapping moves to another company; two new alerts: one
			// ticket (the cap), one more over the cap.
			var moved string
			switch sys {
			case psa.SystemAutotask:
				moved = id(e.psaSim.Autotask().AddCompany("Acme Holding"))
			case psa.SystemConnectWise:
				moved = id(e.psaSim.ConnectWise().AddCompany("Acme Holding"))
			case psa.SystemKaseyaBMS:
				moved = id(int64(e.psaSim.KaseyaBMS().AddAccount("Acme Holding")))
			}
			e.company = moved
			after := []sophostest.Alert{alert(10), alert(11)}
			rep := e.pass(eng)
			tot := rep.Totals()
			if tot.Created != 1 || tot.Summarised != 1 || tot.Err != nil || len(tot.Notices) != 1 ||
				!strings.HasPrefix(tot.Notices[0], fmt.Sprintf("the customer's mapping moved from company %s to %s: summary ticket", old, moved)) {
				t.Fatalf("pass after the move = %+v (%+v), want one new ticket, a new summary of one, and a notice naming both summaries", tot, rep.Customers)
			}
			companies := e.ticketCompanies()
			if len(companies) != 4 {
				t.Fatalf("%d tickets after the move, want 4: the old ticket and summary, one new ticket and a new summary (no alert filed twice)", len(companies))
			}
			inOld, inNew := 0, 0
			for _, c := range companies {
				switch c {
				case old:
					inOld++
				case moved:
					inNew++
				}
			}
			if inOld != 2 || inNew != 2 {
				t.Errorf("tickets by company %v: %d in the old company %s, %d in the new %s; want the 2 open ones left where they were and the new "+
					"ticket and summary in the new company", companies, inOld, old, inNew, moved)
			}
			got := summaries()
			if len(got) != 2 || len(got[0].notes) != len(oldSummary.notes)+1 || companies[got[1].id] != moved {
				t.Fatalf("summary tickets after the move = %+v, want the old one with one note more and a new one in company %s", got, moved)
			}
			// That note names the new summary ticket and both companies,
			// for the old company's technicians.
			newSummary := regexp.MustCompile(`new summary ticket (\S+) in company`).FindStringSubmatch(tot.Notices[0])
			if note := got[0].notes[len(got[0].notes)-1]; newSummary == nil || !strings.Contains(note, fmt.Sprintf("moved from company %s to company %s", old, moved)) ||
				!strings.Contains(note, "summary ticket "+newSummary[1]+" there") {
				t.Errorf("the old summary's new note = %q, want it to name both companies and the new summary ticket", note)
			}
			if desc := e.description(got[1].id); !strings.Contains(desc, fmt.Sprintf("moved from company %s to this one", old)) {
				t.Errorf("the new summary's description = %q, want it to name the old summary ticket", desc)
			}

			// The old alerts are resolved: their tickets close in the old
			// company; the new ticket stays open.
			for _, a := range before {
				e.sophos.ResolveAlert(acme, a.ID)
			}
			e.sophos.ResolveAlert(acme, after[1].ID)
			if tot := e.pass(eng).Totals(); tot.Closed != 3 || tot.Err != nil {
				t.Fatalf("pass after the old alerts were resolved = %+v, want the ticket and both summaries closed", tot)
			}
			companies = e.ticketCompanies()
			for _, tk := range e.tickets() {
				if want := companies[tk.id] == old || tk.id == got[1].id; tk.closed != want {
					t.Errorf("ticket %d in company %s: closed %v, want %v", tk.id, companies[tk.id], tk.closed, want)
				}
			}
		})
	}
}

// crashOnNote is a PSA whose process dies, once armed, when the ticket
// engine is about to add a note of title: the pass's goroutine ends there
// (runtime.Goexit), with nothing after the note done, as a psa-syncd
// killed between a write and the next.
type crashOnNote struct {
	psa.Ticketer
	psa.TicketNoteLister
	title string
}

func (c *crashOnNote) AddTicketNote(ctx context.Context, n psa.TicketNote) error {
	if n.Title == c.title {
		runtime.Goexit()
	}
	return c.Ticketer.AddTicketNote(ctx, n)
}

// The "Customer moved" note on the summary ticket a customer's mapping
// moved away from is owed until it is added: psa-syncd killed between the
// new summary's create and the note (crash), or the note's answer lost
// and not applied (lost), gets it sent by a later pass, once; its answer
// lost after it was applied (applied), a later pass finds it on the
// ticket and sends nothing. Before, it was sent once, right after the
// create, and never again: the old company's technicians could be left
// without it.
func TestEngine_movedSummaryNoteIsSettled(t *testing.T) {
	t.Parallel()
	for _, sys := range psa.Systems {
		for _, how := range []string{"crash", "lost", "applied"} {
			t.Run(string(sys)+"/"+how, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, sys)
				routing := func(r *export.Tickets) { r.MaxPerCustomer = 1 }
				eng := e.engineWith(routing)
				for i := range 3 {
					e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: fmt.Sprintf("Threat on PC-%03d", i),
						RaisedAt: fmt.Sprintf("2026-11-15T09:%02d:00.000", i)})
				}
				e.pass(eng)
				var oldSummary int64
				for _, tk := range e.tickets() {
					if strings.Contains(tk.title, "Alert storm") {
						oldSummary = tk.id
					}
				}
				old := e.company
				switch sys {
				case psa.SystemAutotask:
					e.company = id(e.psaSim.Autotask().AddCompany("Acme Holding"))
				case psa.SystemConnectWise:
					e.company = id(e.psaSim.ConnectWise().AddCompany("Acme Holding"))
				case psa.SystemKaseyaBMS:
					e.company = id(int64(e.psaSim.KaseyaBMS().AddAccount("Acme Holding")))
				}
				for i := 10; i < 12; i++ {
					e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: fmt.Sprintf("Threat on PC-%03d", i),
						RaisedAt: fmt.Sprintf("2026-11-15T09:%02d:00.000", i)})
				}
				mark := fmt.Sprintf("moved from company %s to company %s", old, e.company)
				switch how {
				case "crash":
					notes, _ := e.backend.(psa.TicketNoteLister)
					plain := e.backend
					e.backend = &crashOnNote{Ticketer: plain, TicketNoteLister: notes, title: "Customer moved"}
					crashing := e.engineWith(routing)
					e.backend = plain
					done := make(chan struct{})
					go func() {
						defer close(done)
						_, _ = crashing.Pass(t.Context(), e.customers(), false)
					}()
					<-done
					eng = e.engineWith(routing) // psa-syncd started again
				default:
					e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: e.notesPath(oldSummary), DropAfterHandling: how == "applied",
						Drop: how == "lost", Times: 1})
					e.pass(eng)
				}
				if n := e.summaryTickets(); n != 2 {
					t.Fatalf("%d summary tickets after the move, want the old one and a new one", n)
				}
				before := e.countNotes(mark)
				if want := map[bool]int{true: 1}[how == "applied"]; before != want {
					t.Fatalf("%d notes naming the move on the old summary after the move's pass, want %d", before, want)
				}
				e.now = e.now.Add(5 * time.Minute)
				if cr := e.pass(eng).Customers[0]; cr.Err != nil || cr.Created != 0 || cr.Summarised != 0 {
					t.Errorf("pass after the move's = %+v, want nothing filed and no error", cr)
				}
				e.wantNotes(mark, 1)
				recs, err := e.db.TicketRecords("sophos", acme)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range recs {
					if r.MovedNote != "" {
						t.Errorf("record %s still owes the note naming %s", r.AlertKey, r.MovedNote)
					}
				}
				e.now = e.now.Add(5 * time.Minute)
				e.pass(eng)
				e.wantNotes(mark, 1)
			})
		}
	}
}

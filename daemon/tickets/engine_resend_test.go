package tickets_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// deliver sends req, a request the simulator logged and dropped before
// handling it, to the simulator again: the request that was on its way
// when its answer was lost, reaching the PSA late.
func (e *env) deliver(req psatest.Request) {
	e.t.Helper()
	u := e.psaSim.URL() + req.Path
	if req.RawQuery != "" {
		u += "?" + req.RawQuery
	}
	hr, err := http.NewRequestWithContext(e.t.Context(), req.Method, u, bytes.NewReader(req.Body))
	if err != nil {
		e.t.Fatal(err)
	}
	hr.Header = req.Header.Clone()
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		e.t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode >= 300 {
		e.t.Fatalf("delivering %s %s late: status %d", req.Method, req.Path, resp.StatusCode)
	}
}

// notePosts returns the note creates on ticket tk the simulator logged
// whose body holds mark.
func (e *env) notePosts(tk int64, mark string) []psatest.Request {
	var out []psatest.Request
	for _, r := range e.psaSim.Requests() {
		if r.Method == http.MethodPost && strings.EqualFold(r.Path, e.notesPath(tk)) && strings.Contains(string(r.Body), mark) {
			out = append(out, r)
		}
	}
	return out
}

// A note whose answer was lost, not found on the ticket settle time
// later, is sent again; when that answer is lost too, the note sent again
// may still be on its way, so a pass right after (a pass requested through
// the API, or a scheduled one) leaves it settle time after the second
// send, not the first, and does not send it a third time: the late note
// is then found, and the ticket has one. It used to look at once, with
// the time of the first send, and send a third note. On every PSA, for
// each note psa-syncd looks for: a resolve note (on_resolve "note"), the
// "raised again" note of a reopen, a summary's "More alerts" note, and
// ConnectWise's close note (a request of its own after the status).
func TestEngine_noteSentAgainLostAgainIsLeftForTheSettleTime(t *testing.T) {
	t.Parallel()
	type kind struct {
		mark string
		// lost brings e to a pass whose note's answer was lost, the note
		// not applied, and returns the engine and the ticket.
		lost func(e *env) (*tickets.Engine, int64)
	}
	kinds := map[string]kind{
		"resolve note": {"resolved in Sophos Central", func(e *env) (*tickets.Engine, int64) {
			r := routings[e.system]
			r.OnResolve = export.OnResolveNote
			eng := e.engine(r)
			a := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Ransomware detected"})
			e.pass(eng)
			tk := e.tickets()[0].id
			e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: e.notesPath(tk), Drop: true, Times: 1})
			e.sophos.ResolveAlert(acme, a.ID)
			if cr := e.pass(eng).Customers[0]; !slicesContain(cr.Notices, "looks for the note") {
				e.t.Fatalf("pass with the note's answer lost = %+v, want a notice that the next pass looks for it", cr)
			}
			return eng, tk
		}},
		"reopen note": {"raised again", func(e *env) (*tickets.Engine, int64) {
			r := routings[e.system]
			r.OnReturn = export.OnReturnReopen
			eng := e.engine(r)
			a := e.resolvedHealthCheck(eng)
			e.raiseAgain(a)
			e.now = e.now.Add(time.Hour)
			tk := e.tickets()[0].id
			e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: e.notesPath(tk), BodyContains: "raised again", Drop: true, Times: 1})
			if cr := e.pass(eng).Customers[0]; cr.Reopened != 1 || !slicesContain(cr.Notices, "looks for its \"raised again\" note") {
				e.t.Fatalf("pass with the reopen note's answer lost = %+v, want the ticket reopened and a notice", cr)
			}
			return eng, tk
		}},
		"summary note": {"summarised here", func(e *env) (*tickets.Engine, int64) {
			eng, summary := e.alertStorm()
			e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: e.notesPath(summary), Drop: true, Times: 1})
			if cr := e.pass(eng).Customers[0]; cr.Summarised != 1 || len(cr.Notices) == 0 {
				e.t.Fatalf("pass with the summary note's answer lost = %+v, want 1 summarised and a notice", cr)
			}
			return eng, summary
		}},
	}
	type run struct {
		sys  psa.System
		name string
		kind kind
	}
	var runs []run
	for _, sys := range psa.Systems {
		for name, k := range kinds {
			runs = append(runs, run{sys, name, k})
		}
	}
	runs = append(runs, run{psa.SystemConnectWise, "close note", kind{"resolved in Sophos Central", func(e *env) (*tickets.Engine, int64) {
		eng := e.engine(routings[e.system])
		a := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Ransomware detected"})
		e.pass(eng)
		tk := e.tickets()[0].id
		e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: e.notesPath(tk), Drop: true, Times: 1})
		e.sophos.ResolveAlert(acme, a.ID)
		if cr := e.pass(eng).Customers[0]; cr.Closed != 1 || !slicesContain(cr.Notices, "looks for the note") {
			e.t.Fatalf("pass with the close note's answer lost = %+v, want the ticket closed and a notice", cr)
		}
		return eng, tk
	}}})
	for _, rn := range runs {
		t.Run(string(rn.sys)+"/"+rn.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, rn.sys)
			e.settleTime = 2 * time.Minute
			eng, tk := rn.kind.lost(e)
			if n := len(e.notePosts(tk, rn.kind.mark)); n != 1 {
				t.Fatalf("%d note sends after the first pass, want 1", n)
			}

			// Settle time later the note is not on the ticket: sent
			// again, and that answer is lost too (the note on its way).
			e.now = e.now.Add(5 * time.Minute)
			e.psaSim.AddFault(psatest.Fault{Method: http.MethodPost, Path: e.notesPath(tk), Drop: true, Times: 1})
			if rep := e.pass(eng); !slicesContain(rep.Customers[0].Notices, "was lost") || !rep.SettleAt.Equal(e.now.Add(e.settleTime)) {
				t.Errorf("pass sending the note again = %+v, SettleAt %v; want a notice that its answer was lost, and a pass settle time after the send",
					rep.Customers[0], rep.SettleAt)
			}
			posts := e.notePosts(tk, rn.kind.mark)
			if len(posts) != 2 || !posts[1].Dropped {
				t.Fatalf("note sends = %+v, want the note sent again and dropped", posts)
			}

			// A pass right after leaves it.
			e.now = e.now.Add(30 * time.Second)
			rep := e.pass(eng)
			cr := rep.Customers[0]
			if n := len(e.notePosts(tk, rn.kind.mark)); n != 2 {
				t.Errorf("pass 30 s after the note was sent again = %+v: %d note sends, want none more (the note may be on its way)", cr, n)
			}
			if !slicesContain(cr.Notices, "may still be on their way") || !rep.SettleAt.Equal(e.now.Add(-30*time.Second).Add(e.settleTime)) {
				t.Errorf("pass 30 s after the note was sent again = %+v, SettleAt %v; want a notice and the note settled settle time after the send",
					cr, rep.SettleAt)
			}

			// The note sent again reaches the PSA: it is found, and the
			// ticket has one.
			e.deliver(posts[1])
			for range 2 {
				e.now = e.now.Add(5 * time.Minute)
				if cr := e.pass(eng).Customers[0]; cr.Err != nil {
					t.Errorf("pass after the note reached the PSA = %+v, want no error", cr)
				}
			}
			if n := e.countNotes(rn.kind.mark); n != 1 {
				t.Errorf("%d notes holding %q on the tickets, want 1", n, rn.kind.mark)
			}
			for _, r := range func() []tickets.Record { rs, _ := e.db.TicketRecords("sophos", acme); return rs }() {
				if r.State == tickets.StateNoting || r.State == tickets.StateReopening || len(r.NoteAlerts) > 0 {
					t.Errorf("record %+v still has its note unsettled", r)
				}
			}
		})
	}
}

package usage

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/backends"
	"github.com/psa-sync/terraform-provider-psa/psa/kaseyabms"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// bmsServicesPath matches the POST that adds lines to a contract.
const bmsServicesPath = "/v2/finance/contracts/recurringservices/*"

// bmsLines returns the lines of one service on one contract, as posted.
func bmsLines(h *sysHarness, contract, service string) []psatest.KaseyaBMSLine {
	h.t.Helper()
	var out []psatest.KaseyaBMSLine
	for _, l := range h.sim.KaseyaBMS().ServiceLines(int(mustParse(h.t, contract))) {
		if strconv.Itoa(l.ServiceID) == service {
			out = append(out, l)
		}
	}
	return out
}

func TestEngineKaseyaBMS_changePostsOneNewLine(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemKaseyaBMS)
	h.pol.EffectiveDate = EffectiveToday
	today := time.Date(2026, time.November, 21, 0, 0, 0, 0, time.UTC)
	h.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-b,Globex,CIXA-MSP,10")

	plan := h.plan()
	c := sysFindChange(plan, h.svcIntercept)
	wantReason := "usage 40 (CIXA-MSP 40); current unknown → 40: kaseya_bms cannot report a line's units and psa-syncd has not set this line from the effective date or earlier, so a new line is posted"
	if c == nil || c.Action != ActionUpdate || c.CurrentKnown || c.Reason != wantReason {
		t.Errorf("planned change = %+v\nwant an update with reason %q", c, wantReason)
	}

	h.sync(PassOptions{})
	lines := bmsLines(h, h.contractA, h.svcIntercept)
	if len(lines) != 1 || lines[0].Units != 40 || !lines[0].EffectiveDate.Equal(today) || lines[0].UnitPrice != 4.5 {
		t.Fatalf("lines after the first pass = %+v, want one of 40 units at 4.5 from %s", lines, today)
	}

	// Usage grows: exactly one new line with the new units, the first
	// one is left as it is.
	h.writeUsage("cust-a,Acme,CIXA-MSP,45", "cust-b,Globex,CIXA-MSP,10")
	h.sim.ResetRequests()
	res := h.sync(PassOptions{})
	if n := h.writes(); n != 1 {
		t.Errorf("%d line posts, want 1", n)
	}
	lines = bmsLines(h, h.contractA, h.svcIntercept)
	if len(lines) != 2 || lines[0].Units != 40 || lines[1].Units != 45 || !lines[1].EffectiveDate.Equal(today) {
		t.Errorf("lines = %+v, want the first line and a new one of 45 units from %s", lines, today)
	}
	if n := len(bmsLines(h, h.contractB, h.svcIntercept)); n != 1 {
		t.Errorf("contract B has %d lines, want 1", n)
	}
	c = sysFindChange(res.Plan, h.svcIntercept)
	if c == nil || c.Current != 40 || !c.CurrentKnown || c.Desired != 45 {
		t.Errorf("change = %+v, want 40 -> 45", c)
	}

	// The decrease guard compares with the ledger.
	h.writeUsage("cust-a,Acme,CIXA-MSP,5", "cust-b,Globex,CIXA-MSP,10")
	h.sim.ResetRequests()
	res = h.sync(PassOptions{})
	if n := h.writes(); n != 0 {
		t.Errorf("%d line posts for a held decrease, want 0", n)
	}
	if c := sysFindChange(res.Plan, h.svcIntercept); c == nil || c.Action != ActionHeld || !strings.Contains(c.Reason, "from 45 to 5") {
		t.Errorf("change = %+v, want the decrease held", c)
	}
}

func TestEngineKaseyaBMS_nothingSetAndNoUsagePostsNothing(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemKaseyaBMS)
	// MDR has no usage and was never set: no line is posted for it, not
	// even 0. CIXA-SRV reports 0: nothing to post either.
	h.writeUsage("cust-a,Acme,CIXA-SRV,0", "cust-b,Globex,CIXA-MSP,10")
	res := h.sync(PassOptions{})
	if n := h.writes(); n != 1 {
		t.Errorf("%d line posts, want 1 (cust-b only)", n)
	}
	if c := sysFindChange(res.Plan, h.svcIntercept); c == nil || c.Action != ActionUnchanged || c.Reason != "usage 0 (CIXA-SRV 0); current unknown and nothing to post" {
		t.Errorf("change = %+v, want unchanged, nothing to post", c)
	}
	if c := sysFindChange(res.Plan, h.svcMDR); c != nil {
		t.Errorf("change for a service never set and without usage: %+v", c)
	}
}

func TestEngineKaseyaBMS_lostResponseIsNotReposted(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemKaseyaBMS,
		psatest.WithFault(psatest.Fault{Method: http.MethodPost, Path: bmsServicesPath, DropAfterHandling: true, Times: 1}))
	h.pol.WriteConcurrency = 1 // the first post (Acme's Intercept X) loses its answer
	h.writeUsage("cust-a,Acme,CIXA-MSP,42", "cust-a,Acme,MDR,5", "cust-b,Globex,CIXA-MSP,10")

	res := h.sync(PassOptions{})
	if n := h.writes(); n != 3 {
		t.Errorf("%d line posts, want 3", n)
	}
	open, _ := h.db.OpenIntents()
	if len(open) != 1 || open[0].ServiceID != h.svcIntercept || open[0].After != 42 {
		t.Fatalf("open intents = %+v, want the one whose answer was lost", open)
	}
	in := open[0]
	cs := h.status("cust-a")
	wantHint := fmt.Sprintf("check contract %s in Kaseya BMS for a line of service %s (Sophos Intercept X Advanced) with 42 units effective 2026-11-01; "+
		"then run `psa-syncd resolve -intent %d -posted` if it is there (delete any duplicate first) or `psa-syncd resolve -intent %d -not-posted` if it is not (while psa-syncd run is up, with its -web.url and -web.token-file); "+
		"psa-syncd never posts it again by itself", h.contractA, h.svcIntercept, in.ID, in.ID)
	if cs.Result != state.CustomerFailed || cs.Hint != wantHint {
		t.Errorf("status of cust-a = %+v\nwant failed with hint %q", cs, wantHint)
	}
	if cs := h.status("cust-b"); cs.Result != state.CustomerSucceeded {
		t.Errorf("status of cust-b = %+v, want succeeded", cs)
	}
	if res.Run.Result != state.RunPartial {
		t.Errorf("run = %+v, want partial", res.Run)
	}

	// The next passes never post that line again, whatever the usage.
	for _, usage := range []string{"cust-a,Acme,CIXA-MSP,42", "cust-a,Acme,CIXA-MSP,43"} {
		h.writeUsage(usage, "cust-a,Acme,MDR,5", "cust-b,Globex,CIXA-MSP,10")
		h.sim.ResetRequests()
		res = h.sync(PassOptions{})
		if n := h.writes(); n != 0 {
			t.Errorf("usage %q: %d line posts, want 0", usage, n)
		}
		c := sysFindChange(res.Plan, h.svcIntercept)
		if c == nil || c.Action != ActionFailed || !strings.Contains(c.Reason, "awaiting review") {
			t.Errorf("change = %+v, want failed, awaiting review", c)
		}
		if cs := h.status("cust-a"); cs.Result != state.CustomerFailed || cs.Hint != wantHint {
			t.Errorf("status of cust-a = %+v, want failed with the review hint", cs)
		}
	}
	// A plan shows the blocked line too.
	plan := h.plan()
	if c := sysFindChange(plan, h.svcIntercept); c == nil || c.Action != ActionFailed {
		t.Errorf("planned change = %+v, want failed, awaiting review", c)
	}
	if n := len(bmsLines(h, h.contractA, h.svcIntercept)); n != 1 {
		t.Errorf("the simulator has %d lines of the service, want 1", n)
	}

	// The operator finds the line in BMS and says so; the ledger then
	// knows 42, and usage of 43 posts one new line.
	if _, err := h.engine().ResolveIntent(in.ID, true, "seen in BMS by jane"); err != nil {
		t.Fatal(err)
	}
	if le, ok, _ := h.db.LastSet(h.contractA, h.svcIntercept); !ok || le.After != 42 || le.IntentID != in.ID {
		t.Errorf("LastSet = %+v, want 42 from intent %d", le, in.ID)
	}
	h.sim.ResetRequests()
	res = h.sync(PassOptions{})
	if n := h.writes(); n != 1 {
		t.Errorf("after resolving: %d line posts, want 1", n)
	}
	if lines := bmsLines(h, h.contractA, h.svcIntercept); len(lines) != 2 || lines[1].Units != 43 {
		t.Errorf("lines = %+v, want a new line of 43 units", lines)
	}
	if res.Run.Result != state.RunSuccess {
		t.Errorf("run after resolving = %+v, want success", res.Run)
	}
	if _, err := h.engine().ResolveIntent(in.ID, true, ""); err == nil || !strings.Contains(err.Error(), "is not open") {
		t.Errorf("resolving twice: %v, want an error", err)
	}
}

// TestEngineKaseyaBMS_crashBetweenIntentAndPost covers a psa-syncd killed
// after recording an intent, with the line posted before the kill or not:
// after the restart, Reconcile cannot read BMS, so it guesses nothing,
// marks the customer for review and leaves the line blocked; a pass never
// posts it; the operator's answer settles it.
func TestEngineKaseyaBMS_crashBetweenIntentAndPost(t *testing.T) {
	t.Parallel()
	for _, posted := range []bool{true, false} {
		t.Run(fmt.Sprintf("posted=%v", posted), func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, psa.SystemKaseyaBMS)
			h.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-b,Globex,CIXA-MSP,10")
			h.sync(PassOptions{})

			// The killed pass: usage rose to 42, the intent was recorded,
			// and the post reached BMS or not.
			in, err := h.db.OpenIntent(state.Intent{RunID: 99, System: psa.SystemKaseyaBMS, Source: "file", CustomerID: "cust-a",
				ContractID: h.contractA, ServiceID: h.svcIntercept, Before: 40, After: 42, BeforeKnown: true, EffectiveDate: etPeriodDay})
			if err != nil {
				t.Fatal(err)
			}
			if posted {
				h.sim.KaseyaBMS().AddLine(int(mustParse(t, h.contractA)), int(mustParse(t, h.svcIntercept)), 42, etPeriodDay)
			}
			wantLines := len(bmsLines(h, h.contractA, h.svcIntercept))

			// The restart: Reconcile settles nothing, and says why.
			h.sim.ResetRequests()
			n, err := NewEngine(EngineOptions{Backend: h.be, State: h.db, Now: func() time.Time { return etNow }}).Reconcile(t.Context())
			if err != nil || n != 0 {
				t.Fatalf("Reconcile = %d, %v; want 0, nil", n, err)
			}
			if len(h.sim.Requests()) != 0 {
				t.Errorf("Reconcile sent %d requests to BMS, want none", len(h.sim.Requests()))
			}
			if open, _ := h.db.OpenIntents(); len(open) != 1 || open[0].ID != in.ID {
				t.Fatalf("open intents = %+v, want intent %d still open", open, in.ID)
			}
			cs := h.status("cust-a")
			if cs.Result != state.CustomerFailed || !strings.Contains(cs.Hint, fmt.Sprintf("check contract %s in Kaseya BMS", h.contractA)) ||
				!strings.Contains(cs.Hint, "with 42 units effective 2026-11-01") || !strings.Contains(cs.Error, "awaiting review") {
				t.Errorf("status of cust-a after Reconcile = %+v, want marked for review", cs)
			}

			// Passes go on for everyone else and never post that line.
			h.writeUsage("cust-a,Acme,CIXA-MSP,42", "cust-b,Globex,CIXA-MSP,11")
			for range 2 {
				h.sim.ResetRequests()
				res := h.sync(PassOptions{})
				if n := h.writes(); n > 1 {
					t.Errorf("%d line posts, want at most 1 (cust-b)", n)
				}
				if cs := h.status("cust-a"); cs.Result != state.CustomerFailed || !strings.Contains(cs.Hint, "psa-syncd resolve -intent") {
					t.Errorf("status of cust-a = %+v, want failed awaiting review", cs)
				}
				if res.Run.Result != state.RunPartial {
					t.Errorf("run = %+v, want partial", res.Run)
				}
			}
			h.wantUnits(h.contractB, h.svcIntercept, 11)
			if got := len(bmsLines(h, h.contractA, h.svcIntercept)); got != wantLines {
				t.Errorf("contract A has %d lines of the service, want %d", got, wantLines)
			}

			// The operator checks BMS and answers.
			if _, err := h.engine().ResolveIntent(in.ID, posted, ""); err != nil {
				t.Fatal(err)
			}
			h.sim.ResetRequests()
			res := h.sync(PassOptions{})
			wantPosts := 0
			if !posted {
				wantPosts = 1 // now, and only now, the line is posted
			}
			if n := h.writes(); n != wantPosts {
				t.Errorf("after resolving: %d line posts, want %d", n, wantPosts)
			}
			h.wantUnits(h.contractA, h.svcIntercept, 42)
			if got := len(bmsLines(h, h.contractA, h.svcIntercept)); got != 2 {
				t.Errorf("contract A has %d lines of the service, want 2 (40, then 42)", got)
			}
			if res.Run.Result != state.RunSuccess {
				t.Errorf("run after resolving = %+v, want success", res.Run)
			}
			if open, _ := h.db.OpenIntents(); len(open) != 0 {
				t.Errorf("open intents left: %+v", open)
			}
		})
	}
}

func TestSystemNotes(t *testing.T) {
	t.Parallel()
	notes := strings.Join(SystemNotes(psa.SystemKaseyaBMS), " ")
	for _, want := range []string{"cannot report the units", "one new recurring-service line", "psa-syncd resolve"} {
		if !strings.Contains(notes, want) {
			t.Errorf("Kaseya BMS notes %q do not say %q", notes, want)
		}
	}
	if n := SystemNotes(psa.SystemAutotask); len(n) != 0 {
		t.Errorf("Autotask notes = %q, want none", n)
	}
}

// TestEngineKaseyaBMS_limitRefusalStopsThePass: another process used up the
// hour's 1,500 line posts, so BMS answers 429 "API call limit exceeded".
// The pass used to retry every post for minutes; now the first refusal
// stops the posts for the pass: one request reaches BMS, the other line is
// skipped saying when the budget frees up, the run is partial, and
// psa_sync_api_budget_remaining shows the endpoint spent.
func TestEngineKaseyaBMS_limitRefusalStopsThePass(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemKaseyaBMS)
	h.pol.WriteConcurrency = 1
	h.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-b,Globex,CIXA-MSP,10")
	h.sim.AddFault(psatest.Fault{Method: http.MethodPost, Path: bmsServicesPath, Status: http.StatusTooManyRequests,
		Body: `{"success":false,"error":{"code":429,"message":"API call limit exceeded"}}`})
	h.sim.ResetRequests()
	res := h.sync(PassOptions{})
	posts := 0
	for _, r := range h.sim.Requests() {
		if r.Method == http.MethodPost && strings.Contains(strings.ToLower(r.Path), "/recurringservices/") {
			posts++
		}
	}
	if posts != 1 {
		t.Errorf("%d line posts reached BMS, want 1: the refusal stops the others, without retries", posts)
	}
	if res.Run.Result != state.RunPartial && res.Run.Result != state.RunFailure {
		t.Errorf("run result = %s, want partial", res.Run.Result)
	}
	var skipped, failed int
	for _, c := range res.Plan.Changes {
		switch c.Action {
		case ActionSkipped:
			skipped++
			if !strings.Contains(c.Reason, "no more calls go there until") {
				t.Errorf("skipped line reason = %q, want it to say when the budget frees up", c.Reason)
			}
		case ActionFailed:
			failed++
		}
	}
	if skipped != 1 || failed != 1 {
		t.Errorf("%d skipped and %d failed lines, want 1 and 1: %+v", skipped, failed, res.Plan.Changes)
	}
	const endpoint = "/v2/finance/contracts/recurringservices/{id}/services"
	if got := testutil.ToFloat64(h.m.APIBudgetRemaining.WithLabelValues(endpoint)); got != 0 {
		t.Errorf("api_budget_remaining{endpoint=%q} = %v, want 0", endpoint, got)
	}
}

// bmsCallStore is a Kaseya BMS call store whose rolling hour the test ends
// at will (forget), with calls that other processes made (others), and
// whose count can fail (broken).
type bmsCallStore struct {
	mu     sync.Mutex
	calls  map[string]int
	others map[string]int
	broken bool
}

func (s *bmsCallStore) Take(endpoint string, _ time.Time, _ time.Duration, _ int) (time.Time, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[endpoint]++
	return time.Time{}, true, nil
}

func (s *bmsCallStore) Block(string, time.Time) error { return nil }

func (s *bmsCallStore) Calls(time.Time, time.Duration, int) (map[string]int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken {
		return nil, errors.New("database is locked")
	}
	out := map[string]int{}
	for ep, n := range s.calls {
		out[ep] += n
	}
	for ep, n := range s.others {
		out[ep] += n
	}
	return out, nil
}

// forget ends the rolling hour: no endpoint has calls in it any more.
func (s *bmsCallStore) forget() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls, s.others = map[string]int{}, map[string]int{}
}

// TestEngineKaseyaBMS_endpointBudgetFreedWhenNotCalled: a pass leaves the
// line posts' budget low (other integrations posted 1,400 times this
// hour). An hour later the next pass, with nothing to write, calls no line
// post: psa_sync_api_budget_remaining for that endpoint must show the
// whole budget again, not keep the low value (PsaSyncAPIBudgetLow would
// fire after every pass). A pass that cannot count the calls changes
// nothing.
func TestEngineKaseyaBMS_endpointBudgetFreedWhenNotCalled(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemKaseyaBMS)
	calls := &bmsCallStore{calls: map[string]int{}, others: map[string]int{}}
	kc := *h.cfg.KaseyaBMS
	kc.Calls = calls
	h.cfg.KaseyaBMS = &kc
	be, err := backends.New(h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.be = be
	const posts = "/v2/finance/contracts/recurringservices/{id}/services"
	calls.others[posts] = 1400
	h.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-b,Globex,CIXA-MSP,10")
	if res := h.sync(PassOptions{}); res.Run.Updated == 0 {
		t.Fatalf("first pass updated nothing: %+v", res.Run)
	}
	remaining := func() float64 { return testutil.ToFloat64(h.m.APIBudgetRemaining.WithLabelValues(posts)) }
	low := remaining()
	if low >= 0.2*kaseyabms.HourlyLimit {
		t.Fatalf("api_budget_remaining{endpoint=%q} after the first pass = %v, want it low", posts, low)
	}

	calls.broken = true
	if res := h.sync(PassOptions{}); res.Run.Updated != 0 {
		t.Fatalf("pass with the calls uncountable = %+v, want nothing to write", res.Run)
	}
	if got := remaining(); got != low {
		t.Errorf("api_budget_remaining{endpoint=%q} after a pass that could not count the calls = %v, want it unchanged (%v)", posts, got, low)
	}

	// An hour later nothing has been called; the pass has nothing to write.
	calls.broken = false
	calls.forget()
	if res := h.sync(PassOptions{}); res.Run.Updated != 0 || res.Run.Result != state.RunSuccess {
		t.Fatalf("pass an hour later = %+v, want a success with nothing to write", res.Run)
	}
	if got := remaining(); got != kaseyabms.HourlyLimit {
		t.Errorf("api_budget_remaining{endpoint=%q} after a pass an hour later that did not call it = %v, want the whole budget %d",
			posts, got, kaseyabms.HourlyLimit)
	}
}

// TestEngineKaseyaBMS_catalogServicesKept checks that the services a pass
// posts lines of are read before the writes in one request and kept in the
// state database, so that a pass in another process within the backend's
// time to live reads none, and that one after it reads them again and
// posts at a price changed since.
func TestEngineKaseyaBMS_catalogServicesKept(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemKaseyaBMS)
	// pass runs a pass over the usage rows in a process of its own (a
	// backend of its own) and checks its service reads and line posts.
	pass := func(name string, reads, writes int, rows ...string) {
		t.Helper()
		be, err := backends.New(h.cfg)
		if err != nil {
			t.Fatal(err)
		}
		h.be = be
		h.writeUsage(rows...)
		h.sim.ResetRequests()
		h.sync(PassOptions{})
		n := 0
		for _, r := range h.sim.Requests() {
			if strings.Contains(r.Path, "/admin/finance/services") {
				n++
			}
		}
		if w := h.writes(); n != reads || w != writes {
			t.Errorf("%s: %d service reads and %d line posts, want %d and %d", name, n, w, reads, writes)
		}
	}
	// One search page for both services.
	pass("first pass", 1, 3, "cust-a,Acme,CIXA-MSP,40", "cust-a,Acme,MDR,3", "cust-b,Globex,CIXA-MSP,10")
	kept, err := h.db.CatalogServices(psa.SystemKaseyaBMS, []string{h.svcIntercept, h.svcMDR})
	if err != nil || len(kept) != 2 || kept[h.svcIntercept].UnitPrice != 4.5 || kept[h.svcMDR].Name != "Sophos MDR" {
		t.Fatalf("catalog services kept = %+v, %v; want both services", kept, err)
	}
	pass("pass within the time to live", 0, 3, "cust-a,Acme,CIXA-MSP,41", "cust-a,Acme,MDR,4", "cust-b,Globex,CIXA-MSP,11")

	// The price changes in BMS; the kept services age past the TTL.
	if _, err := h.be.UpdateService(t.Context(), &psa.Service{ID: h.svcIntercept, Name: "Sophos Intercept X Advanced", UnitPrice: 5.25, Active: true}); err != nil {
		t.Fatal(err)
	}
	var aged []state.CatalogService
	for _, s := range kept {
		s.ReadAt = time.Now().Add(-10*time.Minute - time.Second)
		aged = append(aged, s)
	}
	if err := h.db.PutCatalogServices(aged); err != nil {
		t.Fatal(err)
	}
	pass("pass after the time to live", 1, 1, "cust-a,Acme,CIXA-MSP,42", "cust-a,Acme,MDR,4", "cust-b,Globex,CIXA-MSP,11")
	if lines := bmsLines(h, h.contractA, h.svcIntercept); len(lines) != 3 || lines[2].Units != 42 || lines[2].UnitPrice != 5.25 {
		t.Errorf("lines = %+v, want a third of 42 units at the new price 5.25", lines)
	}
}

// TestEngineKaseyaBMS_laterWriteHeld: psa-syncd posted a BMS line dated 1
// December (next_period_start), then the effective date moved earlier
// (period_start). BMS bills the line with the latest effective date on or
// before a day, so a November line would bill only until December, while
// the ledger, whose current value is the change posted last, would say 45
// from then on and every later plan "unchanged". The November plan and pass
// hold the line instead (also with --approve) and post nothing; in
// December the line is written again.
func TestEngineKaseyaBMS_laterWriteHeld(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemKaseyaBMS)
	dec1 := time.Date(2026, time.December, 1, 0, 0, 0, 0, time.UTC)
	now := etNow
	engine := func() *Engine {
		e := h.engine()
		e.now = func() time.Time { return now }
		return e
	}
	billed := func(at time.Time) int {
		t.Helper()
		n, _ := h.sim.KaseyaBMS().Units(int(mustParse(t, h.contractA)), int(mustParse(t, h.svcIntercept)), at)
		return n
	}
	h.pol.EffectiveDate = EffectiveNextPeriodStart
	h.writeUsage("cust-a,Acme,CIXA-MSP,42")
	if _, err := engine().Sync(t.Context(), h.doc, PassOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := billed(dec1); got != 42 {
		t.Fatalf("after the next_period_start pass BMS bills %d from %s, want 42", got, dec1.Format(time.DateOnly))
	}

	h.pol.EffectiveDate = EffectivePeriodStart
	h.writeUsage("cust-a,Acme,CIXA-MSP,45")
	plan, err := engine().Plan(t.Context(), h.doc, PassOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h.sim.ResetRequests()
	for name, opts := range map[string]PassOptions{"pass": {}, "approving pass": {Approve: true, Customer: "cust-a"}} {
		res, err := engine().Sync(t.Context(), h.doc, opts)
		if err != nil {
			t.Fatal(err)
		}
		for what, p := range map[string]*Plan{name: res.Plan, "plan": plan} {
			c := sysFindChange(p, h.svcIntercept)
			if c == nil || c.Action != ActionHeld || c.Approvable() ||
				!strings.Contains(c.Reason, "psa-syncd already set this line to 42 from 2026-12-01") ||
				!strings.Contains(c.Reason, "Kaseya BMS bills that line from 2026-12-01 on, so a line dated 2026-11-01 would bill only until then") {
				t.Errorf("%s: Acme Intercept X = %+v, want held for the line from December", what, c)
			}
		}
		if cs := h.status("cust-a"); cs.Result != state.CustomerHeld || !strings.Contains(cs.Hint, "Kaseya BMS would bill this change only until that date") ||
			strings.Contains(cs.Hint, "max_decrease_percent") || strings.Contains(cs.Hint, "max_increase_percent") {
			t.Errorf("%s: status of cust-a = %+v, want held with the later-write hint only (no guard holds it)", name, cs)
		}
	}
	if n := h.writes(); n != 0 {
		t.Errorf("the November passes posted %d lines, want none", n)
	}
	if got := billed(dec1); got != 42 {
		t.Errorf("after the November passes BMS bills %d from %s, want 42", got, dec1.Format(time.DateOnly))
	}

	// In December the effective date reaches the line: the plan sees what
	// BMS bills (42) and the pass posts 45 from December.
	now = time.Date(2026, time.December, 2, 10, 0, 0, 0, time.UTC)
	res, err := engine().Sync(t.Context(), h.doc, PassOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c := sysFindChange(res.Plan, h.svcIntercept); c == nil || c.Action != ActionUpdate || c.Current != 42 || c.Desired != 45 {
		t.Errorf("December pass: Acme Intercept X = %+v, want 42 -> 45", c)
	}
	if got := billed(dec1); got != 45 {
		t.Errorf("after the December pass BMS bills %d from %s, want 45", got, dec1.Format(time.DateOnly))
	}
}

// TestEngineKaseyaBMS_currentIsTheChangeInForce: the current quantity of a
// BMS line is the ledger's change in force at the effective date (BMS
// bills the latest-dated line), not the change posted last. psa-syncd
// posted 30 from November, then 42 from December (next_period_start);
// back on period_start, November is billed at 30: usage 30 leaves it
// unchanged, and usage 42 is a change of November, held for the December
// line, not "unchanged" because December's line says 42.
func TestEngineKaseyaBMS_currentIsTheChangeInForce(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemKaseyaBMS)
	h.writeUsage("cust-a,Acme,CIXA-MSP,30")
	h.sync(PassOptions{})
	h.pol.EffectiveDate = EffectiveNextPeriodStart
	h.writeUsage("cust-a,Acme,CIXA-MSP,42")
	h.sync(PassOptions{})

	h.pol.EffectiveDate = EffectivePeriodStart
	for _, tc := range []struct {
		usage   int64
		action  string
		current int64
	}{
		{30, ActionUnchanged, 30},
		{42, ActionHeld, 30},
	} {
		h.writeUsage(fmt.Sprintf("cust-a,Acme,CIXA-MSP,%d", tc.usage))
		plan := h.plan()
		if c := sysFindChange(plan, h.svcIntercept); c == nil || c.Action != tc.action || c.Current != tc.current || !c.CurrentKnown || c.Desired != tc.usage {
			t.Errorf("plan with usage %d: Acme Intercept X = %+v, want %s %d -> %d", tc.usage, c, tc.action, tc.current, tc.usage)
		}
	}

	// MDR was first set from December: in November it is unknown, not
	// "never set", and held for the December line.
	h.pol.EffectiveDate = EffectiveNextPeriodStart
	h.writeUsage("cust-a,Acme,CIXA-MSP,42", "cust-a,Acme,MDR,5")
	h.sync(PassOptions{})
	h.pol.EffectiveDate = EffectivePeriodStart
	h.writeUsage("cust-a,Acme,CIXA-MSP,30", "cust-a,Acme,MDR,6")
	plan := h.plan()
	if c := sysFindChange(plan, h.svcMDR); c == nil || c.Action != ActionHeld || c.CurrentKnown ||
		!strings.Contains(c.Reason, "psa-syncd has not set this line from the effective date or earlier") ||
		!strings.Contains(c.Reason, "psa-syncd already set this line to 5 from 2026-12-01") {
		t.Errorf("plan: Acme MDR = %+v, want held, unknown in November, for the line from December", c)
	}
}

// TestEngineKaseyaBMS_serverErrorEnvelopeToEveryWriteStopsTheWrites checks
// that a Kaseya BMS tenant that answers every post with the same
// success:false envelope of code 500 (how BMS reports a failure, inside a
// 200) stops the pass's writes after a few, as an HTTP 500 would, while
// envelopes of code 500 naming each its own contract fail only their
// customers.
func TestEngineKaseyaBMS_serverErrorEnvelopeToEveryWriteStopsTheWrites(t *testing.T) {
	t.Parallel()
	for _, own := range []bool{false, true} {
		t.Run(map[bool]string{false: "the same", true: "each its own"}[own], func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, psa.SystemKaseyaBMS)
			h.pol.WriteConcurrency = 2
			const n = 30
			customers := h.manyCustomers(n, func(i int) (string, string) { return addSysContract(h, i) })
			h.writeUsage(usageRows(customers, func(int) int { return 0 })...)
			for _, cm := range customers {
				msg := "An unexpected error occurred."
				if own {
					msg = "Contract " + cm.ContractID + " is closed."
				}
				h.sim.AddFault(contractWriteFault(h, psatest.Fault{Status: http.StatusOK,
					Body: `{"success":false,"error":{"code":500,"message":"` + msg + `"}}`}, cm.ContractID))
			}
			h.sync(PassOptions{})
			last := h.status(customers[n-1].CustomerID)
			if own {
				if got := h.writes(); got != 2*n {
					t.Errorf("%d line writes sent, want each of the %d", got, 2*n)
				}
				if !strings.Contains(last.Error, "Contract "+customers[n-1].ContractID+" is closed") {
					t.Errorf("status of the last customer = %q, want its own refusal", last.Error)
				}
				return
			}
			// As TestEngineSystems_failingWritesStopThePass.
			sent := 2*(h.pol.WriteConcurrency+2) + h.pol.WriteConcurrency - 1
			if got := h.writes(); got > 2*sent {
				t.Errorf("%d line writes sent into the failure, want at most %d", got, 2*sent)
			}
			if !strings.Contains(last.Error, "not written") || !strings.Contains(last.Error, "An unexpected error occurred.") {
				t.Errorf("status of the last customer = %q, want not written, naming the PSA's answer", last.Error)
			}
		})
	}
}

// TestEngineKaseyaBMS_postSentWhenThePassStopsFinishes: the pass is stopped
// (psa-syncd's shutdown timeout) while a line post is at BMS. Cancelling
// it cut the post off: BMS applied it, psa-syncd never heard, and its
// intent waited for an operator (psa-syncd resolve), so a rolling update
// in the middle of a pass made operator work. The post sent is now let
// finish and its outcome recorded; no post starts after the stop.
func TestEngineKaseyaBMS_postSentWhenThePassStopsFinishes(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemKaseyaBMS,
		psatest.WithFault(psatest.Fault{Method: http.MethodPost, Path: bmsServicesPath, Latency: 700 * time.Millisecond, Times: 1}))
	h.pol.WriteConcurrency = 1
	h.writeUsage("cust-a,Acme,CIXA-MSP,42", "cust-b,Globex,CIXA-MSP,10")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var once sync.Once
	h.rt.beforeSend = func(r *http.Request) {
		if r.Method == http.MethodPost && strings.Contains(r.URL.Path, "/recurringservices/") {
			once.Do(func() { time.AfterFunc(200*time.Millisecond, cancel) })
		}
	}
	_, _ = h.engine().Sync(ctx, h.doc, PassOptions{})
	h.rt.beforeSend = nil
	if n := h.writes(); n != 1 {
		t.Errorf("%d line posts, want 1: none after the pass was stopped", n)
	}
	if open, _ := h.db.OpenIntents(); len(open) != 0 {
		t.Errorf("open intents = %+v, want none: the post sent was let finish and its outcome recorded", open)
	}
	posted := 0
	for _, c := range []string{h.contractA, h.contractB} {
		lines := bmsLines(h, c, h.svcIntercept)
		posted += len(lines)
		if len(lines) == 1 {
			if le, ok, _ := h.db.LastSet(c, h.svcIntercept); !ok || le.After != int64(lines[0].Units) {
				t.Errorf("LastSet of contract %s = %+v, %t; want the %v units posted recorded", c, le, ok, lines[0].Units)
			}
		}
	}
	if posted != 1 {
		t.Errorf("%d lines posted, want the one under way", posted)
	}
}

// TestSentWriteContext: the context of a write lets a request sent when
// the pass stops finish, for up to the grace; one not yet sent, or the
// next one, is not sent at all.
func TestSentWriteContext(t *testing.T) {
	t.Parallel()
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		if d, err := time.ParseDuration(r.URL.Query().Get("hold")); err == nil {
			time.Sleep(d)
		}
	}))
	t.Cleanup(srv.Close)
	do := func(ctx context.Context, hold string) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/?hold="+hold, strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	t.Run("sent finishes", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		var waited atomic.Bool
		wctx, done := sentWriteContext(ctx, 10*time.Second, func() { waited.Store(true) })
		defer done()
		time.AfterFunc(100*time.Millisecond, cancel)
		if err := do(wctx, "400ms"); err != nil || !waited.Load() {
			t.Errorf("request sent before the stop: %v (waiting called: %t), want it answered", err, waited.Load())
		}
		before := got.Load()
		if err := do(wctx, "0s"); err == nil || got.Load() != before {
			t.Errorf("request after the stop: %v, %d sent; want it not sent", err, got.Load()-before)
		}
	})
	t.Run("not sent", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		wctx, done := sentWriteContext(ctx, 10*time.Second, func() {})
		defer done()
		before := got.Load()
		if err := do(wctx, "0s"); err == nil || got.Load() != before {
			t.Errorf("request after the stop: %v, %d sent; want it not sent", err, got.Load()-before)
		}
	})
	t.Run("grace", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		wctx, done := sentWriteContext(ctx, 200*time.Millisecond, func() {})
		defer done()
		time.AfterFunc(100*time.Millisecond, cancel)
		start := time.Now()
		if err := do(wctx, "2s"); err == nil || time.Since(start) > 1500*time.Millisecond {
			t.Errorf("request held past the grace: %v after %s, want it cut at the grace", err, time.Since(start))
		}
	})
}

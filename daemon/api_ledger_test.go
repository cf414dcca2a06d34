package daemon

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// dtFillLedger appends n ledger entries for customer cust-acme, seqs 1 to
// n on a fresh database, in two transactions.
func dtFillLedger(t *testing.T, db *state.DB, n int) {
	t.Helper()
	ins := make([]state.Intent, n)
	for i := range ins {
		ins[i] = state.Intent{RunID: 1, System: psa.SystemAutotask, Source: "file", CustomerID: "cust-acme", ContractID: "1",
			ServiceID: "2", Before: int64(i), After: int64(i + 1), BeforeKnown: true,
			EffectiveDate: time.Date(2026, time.November, 1, 0, 0, 0, 0, time.UTC), Created: time.Now()}
	}
	opened, err := db.OpenIntentBatch(t.Context(), ins)
	if err != nil {
		t.Fatal(err)
	}
	cs := make([]state.IntentCompletion, len(opened))
	for i, in := range opened {
		cs[i] = state.IntentCompletion{ID: in.ID, State: state.IntentDone}
	}
	if err := db.CompleteIntentBatch(t.Context(), cs); err != nil {
		t.Fatal(err)
	}
}

// ledgerPage is GET /api/v1/ledger's answer.
type ledgerPage struct {
	Ledger []LedgerView `json:"ledger"`
	Next   string       `json:"next"`
}

func dtGetLedger(t *testing.T, d *Daemon, target string) ledgerPage {
	t.Helper()
	rec := dtServe(t, d, http.MethodGet, target, "", "")
	var p ledgerPage
	if err := json.Unmarshal(rec.Body.Bytes(), &p); rec.Code != http.StatusOK || err != nil {
		t.Fatalf("GET %s = %d %s (%v)", target, rec.Code, rec.Body, err)
	}
	return p
}

// TestHandler_ledgerPages checks that GET /api/v1/ledger answers at most
// LedgerPageSize entries, newest first, also for limit=0 (once "all"), and
// that following "next" gives every entry once, keeping the filters.
func TestHandler_ledgerPages(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{})
	total := 2*LedgerPageSize + 5
	dtFillLedger(t, e.d.db, total)

	for _, target := range []string{"/api/v1/ledger", "/api/v1/ledger?limit=0", "/api/v1/ledger?limit=5000"} {
		p := dtGetLedger(t, e.d, target)
		if len(p.Ledger) != LedgerPageSize || p.Ledger[0].Seq != int64(total) || p.Next == "" {
			t.Errorf("GET %s = %d entries, next %q; want %d from seq %d and a next page",
				target, len(p.Ledger), p.Next, LedgerPageSize, total)
		}
	}

	// Following next from the first page gives every entry once.
	want := int64(total)
	target := "/api/v1/ledger?customer=cust-acme"
	pages := 0
	for target != "" {
		p := dtGetLedger(t, e.d, target)
		pages++
		for _, l := range p.Ledger {
			if l.Seq != want {
				t.Fatalf("page %d (%s): seq %d, want %d", pages, target, l.Seq, want)
			}
			want--
		}
		if p.Next != "" {
			u, err := url.Parse(p.Next)
			if err != nil || u.Path != "/api/v1/ledger" || u.Query().Get("customer") != "cust-acme" {
				t.Fatalf("next = %q (%v), want a path to the ledger keeping customer=cust-acme", p.Next, err)
			}
		}
		target = p.Next
	}
	if want != 0 || pages != 3 {
		t.Errorf("paging read down to seq %d in %d pages, want every entry in 3", want+1, pages)
	}

	// A small limit pages the same way; the last page has no next.
	p := dtGetLedger(t, e.d, "/api/v1/ledger?limit=3&before=5")
	if len(p.Ledger) != 3 || p.Ledger[0].Seq != 4 || p.Next == "" {
		t.Errorf("limit=3&before=5: %d entries from seq %d, next %q; want seqs 4 to 2 and a next page", len(p.Ledger), p.Ledger[0].Seq, p.Next)
	}
	if p.Next != "" {
		if p := dtGetLedger(t, e.d, p.Next); len(p.Ledger) != 1 || p.Ledger[0].Seq != 1 || p.Next != "" {
			t.Errorf("next page: %+v, want seq 1 and no next", p)
		}
	}
	if p := dtGetLedger(t, e.d, "/api/v1/ledger?after=2000&limit=10"); len(p.Ledger) != 5 || p.Next != "" {
		t.Errorf("after=2000: %d entries, next %q; want the 5 newer entries and no next", len(p.Ledger), p.Next)
	}
	for _, q := range []string{"before=0", "before=x", "after=-1"} {
		if rec := dtServe(t, e.d, http.MethodGet, "/api/v1/ledger?"+q, "", ""); rec.Code != http.StatusBadRequest {
			t.Errorf("GET /api/v1/ledger?%s = %d %s, want 400", q, rec.Code, rec.Body)
		}
	}
}

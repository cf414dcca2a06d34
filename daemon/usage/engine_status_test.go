package usage

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/file"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// statusBeforeRead holds the second ReadLines call until the state
// database holds a status of customer, or for at most a minute, and
// records whether it did.
type statusBeforeRead struct {
	psa.Backend
	db       *state.DB
	customer string

	mu        sync.Mutex
	reads     int
	readAfter bool // the second read began after the status was stored
}

func (b *statusBeforeRead) ReadLines(ctx context.Context, ids []string, asOf time.Time) ([]psa.ContractLine, error) {
	b.mu.Lock()
	b.reads++
	second := b.reads == 2
	b.mu.Unlock()
	if second {
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if _, ok, err := b.db.CustomerStatus("file", b.customer); err == nil && ok {
				b.mu.Lock()
				b.readAfter = true
				b.mu.Unlock()
				break
			}
		}
	}
	return b.Backend.ReadLines(ctx, ids, asOf)
}

// unchangedTenant is chunkedTenant with usage of 1 unit, the units every
// line holds: no line changes.
func unchangedTenant(t *testing.T, n int) *sysHarness {
	h := chunkedTenant(t, n)
	rows := make([]string, 0, 2*n)
	for _, cm := range h.doc.CustomerMappings {
		rows = append(rows, cm.CustomerID+","+cm.CustomerName+",CIXA-MSP,1", cm.CustomerID+","+cm.CustomerName+",MDR,1")
	}
	h.writeUsage(rows...)
	return h
}

// TestEngine_Sync_storesStatusesWhileReading checks that a pass stores the
// statuses of the customers whose lines are all unchanged while it still
// reads the next chunk of contracts, rather than all at the end, and still
// stores every customer's status.
func TestEngine_Sync_storesStatusesWhileReading(t *testing.T) {
	t.Parallel()
	const n = readChunk + 50
	h := unchangedTenant(t, n)
	// Customers are decided by name: cust-0000 is in the first chunk.
	b := &statusBeforeRead{Backend: h.be, db: h.db, customer: "cust-0000"}
	h.be = b
	res := h.sync(PassOptions{})
	if !b.readAfter {
		t.Errorf("the second chunk's read did not wait for a stored status: the first chunk's statuses were not stored while reading")
	}
	if res.Run.Result != state.RunSuccess || res.Run.Unchanged != 2*n || res.Run.Updated != 0 {
		t.Errorf("run = %+v, want success with %d lines unchanged", res.Run, 2*n)
	}
	all, err := h.db.CustomerStatuses()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != n {
		t.Errorf("%d statuses stored, want %d", len(all), n)
	}
	for _, cs := range all {
		if cs.Result != state.CustomerSucceeded || cs.RunID != etID(res.Run.ID) || cs.Unchanged != 2 {
			t.Errorf("status %+v, want succeeded in run %d with 2 lines unchanged", cs, res.Run.ID)
		}
	}
}

// TestEngine_Sync_statusesStoredWhileReadingAreReported checks that the
// statuses stored while a pass reads are exactly those it reports and
// counts at its end, with their LastAttempt and LastSuccess, and that the
// customers settled later (updated, held for review) are stored as
// reported too. The engine's clock moves on at every reading, so that a
// status derived again at the end would carry another time.
func TestEngine_Sync_statusesStoredWhileReadingAreReported(t *testing.T) {
	t.Parallel()
	const n = readChunk + 50
	h := unchangedTenant(t, n)
	h.pol.MaxDecreasePercent = 50
	customers := h.doc.CustomerMappings
	// Every 97th customer's CIXA-MSP line goes up (an update), customer 5's
	// goes to 0 (a decrease held for review), the others stay.
	rows := make([]string, 0, 2*n)
	updated := 0
	for i, cm := range customers {
		msp := 1
		switch {
		case i == 5:
			msp = 0
		case i%97 == 0:
			msp = 3
			updated++
		}
		rows = append(rows, fmt.Sprintf("%s,%s,CIXA-MSP,%d", cm.CustomerID, cm.CustomerName, msp), cm.CustomerID+","+cm.CustomerName+",MDR,1")
	}
	h.writeUsage(rows...)
	src, err := file.New(file.Config{Path: h.usage})
	if err != nil {
		t.Fatal(err)
	}
	var tick atomic.Int64
	e := NewEngine(EngineOptions{Backend: h.be, Source: src, State: h.db, Policies: h.pol, Metrics: h.m, Location: time.UTC,
		Now: func() time.Time { return etNow.Add(time.Duration(tick.Add(1)) * time.Millisecond) }})
	res, err := e.Sync(t.Context(), h.doc, PassOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Run.Updated != updated || res.Run.Held != 1 || res.Run.Unchanged != 2*n-updated-1 {
		t.Errorf("run = %+v, want %d lines updated, 1 held, %d unchanged", res.Run, updated, 2*n-updated-1)
	}
	stored, err := h.db.CustomerStatuses()
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]state.CustomerStatus{}
	for _, cs := range stored {
		byID[cs.CustomerID] = cs
	}
	if len(res.Customers) != n || len(byID) != n {
		t.Fatalf("%d statuses reported and %d stored, want %d each", len(res.Customers), len(byID), n)
	}
	attempts := map[time.Time]bool{}
	results := map[string]int{}
	for _, want := range res.Customers {
		got, ok := byID[want.CustomerID]
		if !ok {
			t.Errorf("no status stored for %s", want.CustomerID)
			continue
		}
		if !got.LastAttempt.Equal(want.LastAttempt) || !got.LastSuccess.Equal(want.LastSuccess) {
			t.Errorf("%s: stored last attempt %v and last success %v, reported %v and %v", want.CustomerID,
				got.LastAttempt, got.LastSuccess, want.LastAttempt, want.LastSuccess)
		}
		got.LastAttempt, got.LastSuccess = want.LastAttempt, want.LastSuccess
		if got != want {
			t.Errorf("%s: stored status\n%+v\nreported\n%+v", want.CustomerID, got, want)
		}
		attempts[want.LastAttempt] = true
		results[want.Result]++
	}
	if results[state.CustomerHeld] != 1 || results[state.CustomerSucceeded] != n-1 {
		t.Errorf("results %v, want 1 held and %d succeeded", results, n-1)
	}
	// The settled customers' statuses were derived as they were decided,
	// each at its own reading of the clock.
	if len(attempts) < n-updated-1 {
		t.Errorf("%d distinct last attempts among %d statuses: the statuses stored while reading were not the ones reported", len(attempts), n)
	}
}

func TestCommonCause(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		errs []string
		want string
	}{
		{[]string{"contract 12: autotask: 401: refused", "contract 22: autotask: 401: refused"}, "autotask: 401: refused"},
		{[]string{"contract 1: the batch read failed: x", "reading contract 2: the batch read failed: x"}, "the batch read failed: x"},
		{[]string{"contract 1: quantity 5 refused", "contract 2: quantity 15 refused"}, ""},
		{[]string{"contract 1: a: b 15: c", "contract 2: a: b 25: c"}, "c"},
		{[]string{"contract 1: x", "contract 2: y"}, ""},
	} {
		if got := commonCause(tc.errs); got != tc.want {
			t.Errorf("commonCause(%q) = %q, want %q", tc.errs, got, tc.want)
		}
	}
}

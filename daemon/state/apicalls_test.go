package state

import (
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/psa-sync/terraform-provider-psa/psa/kaseyabms"
)

// Ensure APICalls gives back the calls the Kaseya BMS client counted and
// did not send.
var _ kaseyabms.CallReturner = (*APICalls)(nil)

// TestAPICalls_sharedAcrossProcesses: two handles on one database, as two
// psa-syncd processes or two passes are, share one budget per endpoint: the
// second cannot spend what the first spent, concurrent takers never both
// get the last call, a block holds for both, and calls leave the window
// after it.
func TestAPICalls_sharedAcrossProcesses(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		cfg := d.config(t)
		a := openConfig(t, cfg)
		defer closeDB(t, a)
		b, err := OpenConfig(t.Context(), cfg)
		if d.name == DriverSQLite {
			// SQLite is locked by one process; the second handle is the
			// next pass of the same process, after the first closed.
			if err == nil {
				t.Fatal("a second SQLite handle opened while the first is open")
			}
			b = a
		} else if err != nil {
			t.Fatal(err)
		} else {
			defer closeDB(t, b)
		}
		const (
			limit  = 5
			window = time.Hour
			ep     = "/v2/finance/contracts/{id}/services"
		)
		now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

		// Eight takers race for five calls.
		var (
			mu  sync.Mutex
			got int
			wg  sync.WaitGroup
		)
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				db := a
				if i%2 == 1 {
					db = b
				}
				_, ok, err := db.APICalls().Take(ep, now.Add(time.Duration(i)*time.Millisecond), window, limit)
				if err != nil {
					t.Error(err)
				}
				if ok {
					mu.Lock()
					got++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if got != limit {
			t.Fatalf("%d of 8 concurrent takes got a call, want exactly %d", got, limit)
		}
		free, ok, err := b.APICalls().Take(ep, now.Add(time.Minute), window, limit)
		if err != nil || ok || !free.After(now.Add(window-time.Second)) || free.After(now.Add(window+time.Second)) {
			t.Errorf("Take with the window full = %v, %v, %v; want refused until about %v", free, ok, err, now.Add(window))
		}
		if calls, err := a.APICalls().Calls(now.Add(time.Minute), window, limit); err != nil || !cmp.Equal(calls, map[string]int{ep: limit}) {
			t.Errorf("Calls = %v, %v; want %s: %d", calls, err, ep, limit)
		}
		// An hour later the window is empty again.
		if _, ok, err := a.APICalls().Take(ep, now.Add(window+time.Minute), window, limit); err != nil || !ok {
			t.Errorf("Take after the window = %v, %v; want a call", ok, err)
		}

		// A 429 blocks the endpoint for every holder until the given time.
		other := "/v2/crm/accounts"
		until := now.Add(2 * time.Hour)
		if err := a.APICalls().Block(other, until); err != nil {
			t.Fatal(err)
		}
		if err := a.APICalls().Block(other, now); err != nil { // an earlier block does not shorten it
			t.Fatal(err)
		}
		if free, ok, err := b.APICalls().Take(other, now.Add(time.Hour), window, limit); err != nil || ok || !free.Equal(until) {
			t.Errorf("Take of a blocked endpoint = %v, %v, %v; want refused until %v", free, ok, err, until)
		}
		if calls, err := b.APICalls().Calls(now.Add(time.Hour), window, limit); err != nil || calls[other] != limit {
			t.Errorf("Calls of a blocked endpoint = %v, %v; want %d", calls, err, limit)
		}
		if _, ok, err := b.APICalls().Take(other, until.Add(time.Second), window, limit); err != nil || !ok {
			t.Errorf("Take after the block = %v, %v; want a call", ok, err)
		}
	})
}

// TestAPICalls_blockPastTheWindowShortened: a block an earlier psa-syncd
// stored for what BMS's 429 asked, a day, held the endpoint that day, in
// every process. The first Take that finds it shortens it to a window
// after its time, for the next process too; a later Take does not move
// it, and a call goes through once it ends.
func TestAPICalls_blockPastTheWindowShortened(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		cfg := d.config(t)
		const (
			limit  = 5
			window = time.Hour
			ep     = "/v2/finance/contracts/recurringservices/{id}/services"
		)
		now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
		a := openConfig(t, cfg)
		if err := a.APICalls().Block(ep, now.Add(24*time.Hour)); err != nil {
			t.Fatal(err)
		}
		closeDB(t, a)

		// The upgraded process.
		b := openConfig(t, cfg)
		found := now.Add(10 * time.Minute)
		want := found.Add(window)
		if free, ok, err := b.APICalls().Take(ep, found, window, limit); err != nil || ok || !free.Equal(want) {
			t.Errorf("first Take = %v, %v, %v; want refused until %v", free, ok, err, want)
		}
		if free, ok, err := b.APICalls().Take(ep, found.Add(10*time.Minute), window, limit); err != nil || ok || !free.Equal(want) {
			t.Errorf("later Take = %v, %v, %v; want refused until %v still", free, ok, err, want)
		}
		closeDB(t, b)

		c := openConfig(t, cfg)
		defer closeDB(t, c)
		if free, ok, err := c.APICalls().Take(ep, found.Add(20*time.Minute), window, limit); err != nil || ok || !free.Equal(want) {
			t.Errorf("Take of the next process = %v, %v, %v; want refused until %v", free, ok, err, want)
		}
		if _, ok, err := c.APICalls().Take(ep, want, window, limit); err != nil || !ok {
			t.Errorf("Take once the block ended = %v, %v; want a call", ok, err)
		}
	})
}

// TestAPICalls_sqliteRidesWithNextCommit: on SQLite a call costs no commit
// of its own: its row is committed with the next group (here an intent's),
// and the calls of one process bind the next one that opens the file.
func TestAPICalls_sqliteRidesWithNextCommit(t *testing.T) {
	t.Parallel()
	cfg := Config{Driver: DriverSQLite, Path: t.TempDir()}
	const (
		limit  = 3
		window = time.Hour
		ep     = "/v2/finance/contracts/{id}/services"
	)
	now := time.Now().UTC()
	a := openConfig(t, cfg)
	before := a.Commits()
	for i := range limit {
		if _, ok, err := a.APICalls().Take(ep, now.Add(time.Duration(i)*time.Millisecond), window, limit); err != nil || !ok {
			t.Fatalf("Take %d = %v, %v; want a call", i, ok, err)
		}
	}
	if n := a.Commits() - before; n != 0 {
		t.Errorf("%d takes made %d commits of their own, want none", limit, n)
	}
	if _, err := a.OpenIntent(Intent{System: "kaseya_bms", Source: "file", CustomerID: "c", ContractID: "1", ServiceID: "2", After: 1}); err != nil {
		t.Fatal(err)
	}
	if n := a.Commits() - before; n != 1 {
		t.Errorf("the takes and an intent took %d commits, want 1", n)
	}
	if _, ok, err := a.APICalls().Take(ep, now.Add(time.Second), window, limit); err != nil || ok {
		t.Errorf("Take with the window full = %v, %v; want refused", ok, err)
	}
	closeDB(t, a)

	b := openConfig(t, cfg)
	defer closeDB(t, b)
	if calls, err := b.APICalls().Calls(now.Add(time.Second), window, limit); err != nil || calls[ep] != limit {
		t.Errorf("Calls after reopening = %v, %v; want %s: %d", calls, err, ep, limit)
	}
	free, ok, err := b.APICalls().Take(ep, now.Add(time.Second), window, limit)
	if err != nil || ok || !free.Equal(now.Add(window)) {
		t.Errorf("Take after reopening = %v, %v, %v; want refused until %v", free, ok, err, now.Add(window))
	}
}

// TestAPICalls_returnGivesOneCallBack: a call given back (Return: the
// client counted it and did not send it) leaves the count at once, frees
// its slot, and stays given back for the next process; of two calls
// counted at the same time, one is given back.
func TestAPICalls_returnGivesOneCallBack(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		cfg := d.config(t)
		db := openConfig(t, cfg)
		const (
			limit  = 3
			window = time.Hour
			ep     = "/v2/finance/contracts/recurringservices/{id}/services"
		)
		now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
		for _, at := range []time.Time{now, now, now.Add(time.Second)} {
			if _, ok, err := db.APICalls().Take(ep, at, window, limit); err != nil || !ok {
				t.Fatalf("Take at %v = %v, %v; want a call", at, ok, err)
			}
		}
		if err := db.APICalls().Return(ep, now); err != nil {
			t.Fatal(err)
		}
		if err := db.APICalls().Return(ep, now.Add(time.Minute)); err != nil { // counted at no such time: nothing
			t.Fatal(err)
		}
		if calls, err := db.APICalls().Calls(now.Add(2*time.Second), window, limit); err != nil || calls[ep] != 2 {
			t.Errorf("Calls after one given back = %v, %v; want %d", calls, err, 2)
		}
		if _, ok, err := db.APICalls().Take(ep, now.Add(2*time.Second), window, limit); err != nil || !ok {
			t.Errorf("Take after a call was given back = %v, %v; want a call", ok, err)
		}
		if _, ok, err := db.APICalls().Take(ep, now.Add(3*time.Second), window, limit); err != nil || ok {
			t.Errorf("Take with the window full again = %v, %v; want refused", ok, err)
		}
		closeDB(t, db)
		next := openConfig(t, cfg)
		defer closeDB(t, next)
		if calls, err := next.APICalls().Calls(now.Add(4*time.Second), window, limit); err != nil || calls[ep] != limit {
			t.Errorf("Calls in the next process = %v, %v; want %d", calls, err, limit)
		}
		if _, ok, err := next.APICalls().Take(ep, now.Add(4*time.Second), window, limit); err != nil || ok {
			t.Errorf("Take in the next process = %v, %v; want refused", ok, err)
		}
	})
}

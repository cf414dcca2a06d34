package usage

import (
	"context"
	"database/sql"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/state/pgtest"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// TestEngine_Sync_surgeOfADeposedPassIsNotStored: on PostgreSQL, the
// active instance a loses the leadership lock during a pass (after it read
// the lines, before it recorded the surge guard's verdict), and b takes
// over and records its own verdict. a's verdict, stored through the pool,
// replaced b's: a pass for one customer, or `sync -approve -surge`, then
// went by the lines a's pass held, holding a line b had released (or the
// reverse) until b's next pass over all customers. Once a has led, the
// verdict is stored only through the lock's session: a's is refused and
// b's stays.
func TestEngine_Sync_surgeOfADeposedPassIsNotStored(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	url, err := pgtest.New(t).CreateDatabase(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	open := func() *state.DB {
		db, err := state.OpenConfig(t.Context(), state.Config{Driver: state.DriverPostgres, URL: url})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		return db
	}
	a, b := open(), open()
	la, err := a.TryLead(t.Context(), state.LeaderInfo{Holder: "a"}, time.Second)
	if err != nil || la == nil {
		t.Fatalf("a becoming the active instance: %v, %v", la, err)
	}
	admin, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	h.db = a
	ids, _ := surgeCustomers(h, 8)
	surgeUsage(h, ids, 2, nil)

	// b's verdict: nothing held.
	theirs := surgeVerdict{Period: "2026-11"}
	var tookOver atomic.Bool
	be := &deposedAtLineRead{Backend: h.be, gone: func() {
		if _, err := admin.Exec(`SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`); err != nil {
			t.Error(err)
			return
		}
		<-la.Lost()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			lb, err := b.TryLead(t.Context(), state.LeaderInfo{Holder: "b"}, time.Second)
			if err != nil {
				t.Error(err)
				return
			}
			if lb != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Error("b cannot lead 30s after a's session was terminated")
				return
			}
		}
		if err := b.PassWrites().PutSnapshot(snapshotSurge, theirs); err != nil {
			t.Error(err)
			return
		}
		tookOver.Store(true)
	}}
	_, _ = h.engineWith(be, nil).Sync(t.Context(), h.doc, PassOptions{}) // a's pass fails: its run's end is refused
	if !tookOver.Load() {
		t.Fatal("b did not take over during a's pass")
	}
	var got surgeVerdict
	if ok, err := b.Snapshot(snapshotSurge, &got); err != nil || !ok {
		t.Fatalf("surge verdict: %v, %v", ok, err)
	}
	if len(got.Held) != 0 {
		t.Errorf("surge verdict after a's deposed pass holds %d lines (%+v), want b's, none: a's replaced it", len(got.Held), got.Held)
	}
}

// deposedAtLineRead calls gone at the pass's first read of contract
// lines, then reads them.
type deposedAtLineRead struct {
	psa.Backend
	once sync.Once
	gone func()
}

func (b *deposedAtLineRead) ReadLines(ctx context.Context, contractIDs []string, asOf time.Time) ([]psa.ContractLine, error) {
	b.once.Do(b.gone)
	return b.Backend.ReadLines(ctx, contractIDs, asOf)
}

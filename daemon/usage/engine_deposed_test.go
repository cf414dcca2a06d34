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

// deposedPass runs a pass of h on PostgreSQL whose instance, a, loses the
// leadership lock after it read the lines (before it records what the pass
// found); b takes over and calls takeOver, as its own pass would record.
// setUp prepares h (its database is a's, which leads) before the pass. It
// returns b, to read what is stored after a's pass.
func deposedPass(t *testing.T, h *etHarness, setUp func(), takeOver func(b *state.DB) error) *state.DB {
	t.Helper()
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
	setUp()
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
		if err := takeOver(b); err != nil {
			t.Error(err)
			return
		}
		tookOver.Store(true)
	}}
	_, _ = h.engineWith(be, nil).Sync(t.Context(), h.doc, PassOptions{}) // a's pass fails: its run's end is refused
	if !tookOver.Load() {
		t.Fatal("b did not take over during a's pass")
	}
	return b
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
	b := deposedPass(t, h, func() {
		ids, _ := surgeCustomers(h, 8)
		surgeUsage(h, ids, 2, nil)
	}, func(b *state.DB) error {
		// b's verdict: nothing held.
		return b.PassWrites().PutSnapshot(snapshotSurge, surgeVerdict{Period: "2026-11"})
	})
	var got surgeVerdict
	if ok, err := b.Snapshot(snapshotSurge, &got); err != nil || !ok {
		t.Fatalf("surge verdict: %v, %v", ok, err)
	}
	if len(got.Held) != 0 {
		t.Errorf("surge verdict after a's deposed pass holds %d lines (%+v), want b's, none: a's replaced it", len(got.Held), got.Held)
	}
}

// TestEngine_Sync_heldSinceOfADeposedPassIsNotStored: as
// TestEngine_Sync_surgeOfADeposedPassIsNotStored, for the record of since
// when each customer has had lines held (psa_sync_held_since). a's pass,
// which held nothing, would replace b's record, and a line b holds on would
// count as held from b's next pass on, its alert late. It does not: a's
// pass stops at its customers' statuses, refused, before it records since
// when lines are held.
func TestEngine_Sync_heldSinceOfADeposedPassIsNotStored(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	since := time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)
	b := deposedPass(t, h, func() {
		h.writeUsage("cust-a,Acme,CIXA-MSP,40")
	}, func(b *state.DB) error {
		return b.PassWrites().PutSnapshot(snapshotHeldSince, map[string]time.Time{"file/cust-a": since})
	})
	var got map[string]time.Time
	if ok, err := b.Snapshot(snapshotHeldSince, &got); err != nil || !ok {
		t.Fatalf("held since: %v, %v", ok, err)
	}
	if !got["file/cust-a"].Equal(since) {
		t.Errorf("held since after a's deposed pass = %v, want b's (cust-a held since %v): a's replaced it", got, since)
	}
}

package usage

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/state/pgtest"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// TestEngineSystems_intentCommittedWithoutAnAnswerIsClosedAsNotSent loses
// the answer to the COMMIT that records a pass's intents (on PostgreSQL: a
// connection lost while it committed, a synchronous standby gone until the
// query timeout), although the database committed them. The pass sends no
// write and says that whether the intents were recorded is unknown; the
// next pass closes them as not sent and writes each line once, rather than
// finding them open as if their answers had been lost: re-read and left to
// settle (Autotask, ConnectWise), or held for an operator's resolve
// (Kaseya BMS), although nothing was sent. On PostgreSQL, whose times
// are kept to the microsecond, too.
func TestEngineSystems_intentCommittedWithoutAnAnswerIsClosedAsNotSent(t *testing.T) {
	t.Parallel()
	for _, sys := range sysSystems {
		for _, pg := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/postgres=%v", sys, pg), func(t *testing.T) {
				t.Parallel()
				h := newSysHarness(t, sys)
				if pg {
					// Times kept to the microsecond, a commit through the
					// leadership lock's session.
					h.usePostgres()
				}
				// A time of day that PostgreSQL does not keep whole.
				h.clock = etNow.Add(1500 * time.Nanosecond)
				h.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-b,Globex,CIXA-MSP,10")
				h.db.LoseCommitAnswer()
				res := h.sync(PassOptions{})
				if n := h.writes(); n != 0 {
					t.Errorf("%d line writes after the intents' COMMIT got no answer, want 0", n)
				}
				c := sysFindChange(res.Plan, h.svcIntercept)
				if c == nil || c.Action != ActionFailed || !strings.Contains(c.Reason, "whether it was recorded is unknown; the write was not sent") ||
					strings.Contains(c.Reason, "nothing was written") {
					t.Errorf("change = %+v; want failed, saying that whether its intent was recorded is unknown", c)
				}
				if cs := h.status("cust-a"); !strings.Contains(cs.Hint, "closes that intent as not sent once the database answers again") {
					t.Errorf("status of cust-a = %+v; want the hint that the intent is closed as not sent", cs)
				}
				if open, err := h.db.OpenIntents(); err != nil || len(open) != 2 {
					t.Fatalf("open intents = %+v, %v; want the 2 the database committed without an answer", open, err)
				}

				h.sim.ResetRequests()
				res = h.sync(PassOptions{})
				if n := h.writes(); n != 2 {
					t.Errorf("%d line writes in the next pass, want 2 (each line once)", n)
				}
				h.wantUnits(h.contractA, h.svcIntercept, 40)
				h.wantUnits(h.contractB, h.svcIntercept, 10)
				if res.Run.Result != state.RunSuccess {
					t.Errorf("next run = %+v; want success", res.Run)
				}
				if open, err := h.db.OpenIntents(); err != nil || len(open) != 0 {
					t.Errorf("open intents after the next pass = %+v, %v; want none", open, err)
				}
			})
		}
	}
}

// TestEngineKaseyaBMS_intentCommittedWithoutAnAnswerIsClosedBeforeExiting
// is the same loss on the way out: an instance that lost the leadership
// lock records what it knows before it exits (RecordUnsaved), and closes
// then the intents that the database committed without an answer, so that
// the instance that takes over posts their lines rather than holding them
// for an operator.
func TestEngineKaseyaBMS_intentCommittedWithoutAnAnswerIsClosedBeforeExiting(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemKaseyaBMS)
	h.usePostgres()
	h.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-b,Globex,CIXA-MSP,10")
	h.db.LoseCommitAnswer()
	h.sync(PassOptions{})
	if open, err := h.db.OpenIntents(); err != nil || len(open) != 2 {
		t.Fatalf("open intents = %+v, %v; want the 2 the database committed without an answer", open, err)
	}
	if closes, runs := h.engine().RecordUnsaved(); closes != 0 || runs != 0 {
		t.Errorf("RecordUnsaved = %d closes, %d runs still unrecorded; want none", closes, runs)
	}
	open, err := h.db.OpenIntents()
	if err != nil || len(open) != 0 {
		t.Errorf("open intents after RecordUnsaved = %+v, %v; want none", open, err)
	}
	if !h.unsaved.Empty() {
		t.Error("the intents closed are still kept")
	}

	// The next active instance, another process: nothing kept.
	h.unsaved = UnsavedRuns{}
	h.sim.ResetRequests()
	if res := h.sync(PassOptions{}); res.Run.Result != state.RunSuccess || h.writes() != 2 {
		t.Errorf("next pass = %+v with %d posts; want success, each line posted once", res.Run, h.writes())
	}
	h.wantUnits(h.contractA, h.svcIntercept, 40)
}

// TestEngineKaseyaBMS_intentCommittedLocallyWithTheSynchronousStandbyGone
// is the loss as PostgreSQL makes it (audit-fence8): with synchronous
// replication and the synchronous standby gone, the COMMIT of a pass's
// intents waits until state.query_timeout; psa-syncd gives it up, which
// closes the lock's connection, and the server then commits the intents
// locally. The instance that lost the leadership closes them as not sent
// before it exits, while the standby is still gone, rather than leave
// them for an operator's resolve.
func TestEngineKaseyaBMS_intentCommittedLocallyWithTheSynchronousStandbyGone(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemKaseyaBMS)
	// A cluster of its own (the setting is the server's), whose commits
	// wait for the WAL flush and the standby as a production server's.
	url, err := pgtest.New(t, pgtest.Durable).CreateDatabase(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	db, err := state.OpenConfig(t.Context(), state.Config{Driver: state.DriverPostgres, URL: url, QueryTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	l, err := db.TryLead(t.Context(), state.LeaderInfo{Holder: "usage-test"}, time.Second)
	if err != nil || l == nil {
		t.Fatalf("becoming the active instance: %v, %v", l, err)
	}
	h.db = db
	admin, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	setStandbys := func(ctx context.Context, names string) {
		for _, q := range []string{`ALTER SYSTEM SET synchronous_standby_names = '` + names + `'`, `SELECT pg_reload_conf()`} {
			if _, err := admin.ExecContext(ctx, q); err != nil {
				t.Error(err)
			}
		}
	}
	if _, err := admin.ExecContext(t.Context(), `CREATE TABLE sync_probe (n int)`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { setStandbys(context.Background(), "") })
	// The standby goes once the pass has begun (its run recorded, which
	// would wait for the standby too), before its intents.
	h.be = &standbyGoesAtContractRead{Backend: h.be, gone: func() {
		setStandbys(t.Context(), "nosuch")
		for !pgtest.CommitWaitsForAStandby(t, admin) {
		}
	}}

	h.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-b,Globex,CIXA-MSP,10")
	// The pass fails as a whole (its customers' statuses cannot be
	// recorded either): its error is not the test's concern.
	_, _ = h.engine().Sync(t.Context(), h.doc, PassOptions{})
	if n := h.writes(); n != 0 {
		t.Errorf("%d line posts after the intents' COMMIT timed out, want 0", n)
	}
	<-l.Lost()
	// pgx closes the lock's connection with a cancel request, which ends
	// the standby's wait: the intents are committed locally.
	for open := 0; open != 2; {
		if err := admin.QueryRowContext(t.Context(), `SELECT count(*) FROM intents WHERE state = 'open'`).Scan(&open); err != nil {
			t.Fatal(err)
		}
	}
	if closes, _ := h.engine().RecordUnsaved(); closes != 0 {
		t.Errorf("RecordUnsaved left %d intent closes unrecorded, want none", closes)
	}
	var open int
	if err := admin.QueryRowContext(t.Context(), `SELECT count(*) FROM intents WHERE state = 'open'`).Scan(&open); err != nil || open != 0 {
		t.Errorf("open intents after RecordUnsaved with the standby still gone = %d, %v; want none", open, err)
	}
}

// standbyGoesAtContractRead calls gone at the pass's first contract read.
type standbyGoesAtContractRead struct {
	psa.Backend
	once sync.Once
	gone func()
}

func (b *standbyGoesAtContractRead) GetContract(ctx context.Context, id string) (*psa.Contract, error) {
	b.once.Do(b.gone)
	return b.Backend.GetContract(ctx, id)
}

package daemon

import (
	"database/sql"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/state/pgtest"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// dtCutOnWrite is a proxy in front of the simulator that ends the
// session holding the leadership lock when the first adjustment arrives,
// before passing it on: the intents were committed, and the writes reach
// the PSA and are answered, but their closes find the lock's connection
// gone.
type dtCutOnWrite struct {
	t     *testing.T
	sim   *psatest.Server
	url   string
	once  sync.Once
	posts atomic.Int64
}

func (h *dtCutOnWrite) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && strings.HasSuffix(strings.ToLower(r.URL.Path), "/contractserviceadjustments") {
		h.once.Do(func() {
			if err := dtTerminateLeadership(h.url); err != nil {
				h.t.Error(err)
			}
		})
		h.posts.Add(1)
	}
	h.sim.Handler().ServeHTTP(w, r)
}

// dtTerminateLeadership is dtCutLeadership for a goroutine other than the
// test's.
func dtTerminateLeadership(url string) error {
	conn, err := sql.Open("pgx", url)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.Exec(`SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`); err != nil {
		return err
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var held int
		if err := conn.QueryRow(`SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&held); err != nil {
			return err
		}
		if held == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d advisory locks still held 10s after their sessions were terminated", held)
		}
	}
}

// TestDaemon_lostLockConnectionRecordsKnownOutcomes: the connection that
// holds the leadership lock (and through which every state write of the
// active instance goes) is lost after a pass committed its intents and
// before it sent their writes. The writes are sent inside the lease and
// answered, but their closes fail with the connection. The instance exits
// so that a standby takes over; before it does, it records the outcomes
// it knows through a new connection, so that the instance that takes over
// finds no open intent to settle (no line held for an operator, for
// Kaseya BMS, whose lines cannot be read back; no wait of settle_time
// for Autotask): one ledger entry per write, no line written twice.
func TestDaemon_lostLockConnectionRecordsKnownOutcomes(t *testing.T) {
	t.Parallel()
	url, err := pgtest.New(t).CreateDatabase(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	cut := &dtCutOnWrite{t: t, url: url}
	front := httptest.NewServer(cut)
	t.Cleanup(front.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// A lock interval long enough that the closes reach the dead
	// connection before the watch notices the loss.
	e := dtSetup(t, dtOptions{daemonOpts: Options{Listener: ln, WatchInterval: time.Hour},
		state:   fmt.Sprintf("state:\n  driver: postgres\n  url: %q\n  lock_interval: 5s\n", url),
		baseURL: func(s *psatest.Server) string { cut.sim = s; return front.URL + "/ATServicesRest/" }})
	a := e.d
	done := make(chan error, 1)
	go func() { done <- a.Run(t.Context()) }()
	for deadline := time.Now().Add(30 * time.Second); !a.Active(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the only instance did not become active")
		}
	}
	a.RequestSync("", usage.TriggerAPI)
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "lost the state database's leadership lock") {
			t.Errorf("Run returned %v, want the lost leadership", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not return after its leadership lock was lost")
	}
	posts := cut.posts.Load()
	if posts != 3 {
		t.Fatalf("%d adjustments sent before the loss, want the pass's 3", posts)
	}

	b := dtSecondInstance(t, e, time.Now)
	open, err := b.State().OpenIntents()
	if err != nil {
		t.Fatal(err)
	}
	if len(open) != 0 {
		t.Errorf("%d intents left open by the instance that lost its lock, want none: it knew how each write ended", len(open))
	}
	ledger, err := b.State().Ledger(0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ledger) != 3 {
		t.Errorf("%d ledger entries, want 3: one per write answered", len(ledger))
	}
	runs, err := b.State().Runs(1)
	if err != nil || len(runs) != 1 {
		t.Fatalf("runs = %+v, %v", runs, err)
	}
	if !strings.Contains(runs[0].Error, "PostgreSQL database") {
		t.Errorf("error recorded for the pass that lost the connection = %q, want one naming the database", runs[0].Error)
	}

	if err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := b.BecomeActive(t.Context()); err != nil {
		t.Fatalf("taking over: %v", err)
	}
	res, err := b.SyncOnce(t.Context(), usage.PassOptions{Trigger: usage.TriggerAPI})
	if err != nil {
		t.Fatal(err)
	}
	if res.Run.Result != state.RunSuccess || res.Run.Updated != 0 {
		t.Errorf("pass of the instance that took over = %+v, want a success that writes nothing", res.Run)
	}
	if n := cut.posts.Load(); n != posts {
		t.Errorf("%d adjustments after the takeover, want none more (no doubled line)", n-posts)
	}
	for _, l := range []struct {
		customer, service int
		want              int64
	}{{0, 0, 11}, {0, 1, 2}, {1, 0, 5}} {
		if u := e.units(l.customer, l.service); u != l.want {
			t.Errorf("units of contract %d service %d = %d, want %d", l.customer, l.service, u, l.want)
		}
	}
}

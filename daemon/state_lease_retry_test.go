package daemon

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/http/httptest"
	neturl "net/url"
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

// TestDaemon_leaseAskedBeforeARetriedWrite: the PSA throttles the first
// adjustment of a pass (429, Retry-After: 1), and while the client waits
// it out the network to PostgreSQL drops everything, so the lease of the
// leadership lock runs out: another instance may take over and settle the
// intent. The client must not send the adjustment again: the lease was
// asked once per write, before its first attempt, and the retry went out
// after it ran out (up to rest.MaxRetryAfter, five minutes, later).
func TestDaemon_leaseAskedBeforeARetriedWrite(t *testing.T) {
	t.Parallel()
	url, err := pgtest.New(t).CreateDatabase(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	dbNet := pgtest.NewBlackhole(t, u.Host)
	viaNet := *u
	viaNet.Host = dbNet.Addr()

	writes := &dtThrottleFirstWrite{arrived: make(chan struct{}, 8), release: make(chan struct{})}
	front := httptest.NewServer(writes)
	t.Cleanup(front.Close)
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(writes.release) }) }
	t.Cleanup(release)
	e := dtSetup(t, dtOptions{daemonOpts: Options{ShutdownTimeout: time.Millisecond},
		state: fmt.Sprintf("state:\n  driver: postgres\n  url: %q\n  lock_interval: 100ms\n  query_timeout: 8s\npolicies:\n  write_concurrency: 1\n",
			viaNet.String()),
		baseURL: func(s *psatest.Server) string { writes.sim = s; return front.URL + "/ATServicesRest/" }})
	a := e.d
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := a.BecomeActive(t.Context()); err != nil {
		t.Fatal(err)
	}
	passDone := make(chan error, 1)
	go func() {
		_, err := a.SyncOnce(context.WithoutCancel(t.Context()), usage.PassOptions{Trigger: usage.TriggerAPI})
		passDone <- err
	}()
	select {
	case <-writes.arrived: // the first adjustment is on its way
	case err := <-passDone:
		t.Fatalf("the pass ended before writing: %v", err)
	}
	direct, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	for deadline := time.Now().Add(10 * time.Second); ; {
		var open int
		if err := direct.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM intents WHERE state = $1`, state.IntentOpen).Scan(&open); err != nil {
			t.Fatal(err)
		}
		if open == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d intents open, want the pass's 3", open)
		}
		time.Sleep(20 * time.Millisecond)
	}

	dbNet.Freeze() // the network to the database drops everything
	for cut := time.Now(); a.db.CheckFence() == nil; time.Sleep(50 * time.Millisecond) {
		if time.Since(cut) > 8*time.Second {
			t.Fatal("the lease did not run out within 8 s of the cut")
		}
	}
	release() // the PSA answers 429: retry after a second
	// The connections fail: the pass ends without waiting query_timeout
	// for each state write. The lease stays run out.
	dbNet.Cut()
	select {
	case err := <-passDone:
		if err == nil {
			t.Error("the pass cut from the database succeeded")
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the pass did not end")
	}
	if n := writes.sent.Load(); n != 0 {
		t.Errorf("%d adjustments reached the PSA after the lease ran out, want none: the throttled one was sent again", n)
	}
}

// dtThrottleFirstWrite is a proxy in front of the simulator that holds
// the first adjustment POST until release is closed and then answers it
// 429 with Retry-After: 1, unhandled; it counts the adjustments that reach
// the simulator.
type dtThrottleFirstWrite struct {
	sim     *psatest.Server
	arrived chan struct{}
	release chan struct{}
	first   atomic.Bool
	sent    atomic.Int64
}

func (h *dtThrottleFirstWrite) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && strings.HasSuffix(strings.ToLower(r.URL.Path), "/contractserviceadjustments") {
		if h.first.CompareAndSwap(false, true) {
			h.arrived <- struct{}{}
			<-h.release
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		h.sent.Add(1)
	}
	h.sim.Handler().ServeHTTP(w, r)
}

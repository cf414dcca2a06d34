package daemon

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
	writes := &dtThrottleFirstWrite{arrived: make(chan struct{}, 8), release: make(chan struct{})}
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(writes.release) }) }
	c := dtPassCutFromTheDatabase(t, writes, writes.arrived, release, func(s *psatest.Server) { writes.sim = s })
	dbNet, passDone := c.dbNet, c.passDone
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

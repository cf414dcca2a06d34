package daemon

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
)

// TestDaemon_psaClientReusesConnections: the PSA client of a daemon given
// no HTTP client keeps a connection per request in flight between rounds
// of concurrent requests, as a pass's senders make them. Go's default
// transport keeps two idle connections per host, so each round of eight
// dialled six new ones.
func TestDaemon_psaClientReusesConnections(t *testing.T) {
	t.Parallel()
	const inFlight, rounds = 8, 4
	var (
		conns   atomic.Int64
		mu      sync.Mutex
		arrived chan struct{}
		release chan struct{}
	)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		a, rel := arrived, release
		mu.Unlock()
		a <- struct{}{}
		<-rel // every request of the round is in flight at once
		_, _ = io.WriteString(w, `{}`)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	e := dtSetup(t, dtOptions{})
	client := e.d.psaClient
	for range rounds {
		mu.Lock()
		arrived, release = make(chan struct{}, inFlight), make(chan struct{})
		a, rel := arrived, release
		mu.Unlock()
		var wg sync.WaitGroup
		for range inFlight {
			wg.Go(func() {
				resp, err := client.Get(srv.URL)
				if err != nil {
					t.Error(err)
					return
				}
				// Read to the end: the connection is back in the idle
				// pool when the body reports EOF.
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			})
		}
		for range inFlight {
			<-a
		}
		close(rel)
		wg.Wait()
	}
	if n := conns.Load(); n != inFlight {
		t.Errorf("%d rounds of %d concurrent requests opened %d connections, want %d", rounds, inFlight, n, inFlight)
	}
}

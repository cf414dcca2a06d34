package connectwise_test

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/connectwise"
	"github.com/psa-sync/terraform-provider-psa/psa/internal/resttest"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// inFlight is an http.RoundTripper that records, for each request answered
// 429 after the first skip requests, how many of those requests were in
// flight when it was sent, itself included.
type inFlight struct {
	next http.RoundTripper
	skip int

	mu      sync.Mutex
	sent    int
	current int
	peak    int
}

func (f *inFlight) RoundTrip(req *http.Request) (*http.Response, error) {
	f.mu.Lock()
	f.sent++
	counted := f.sent > f.skip
	if counted {
		f.current++
	}
	atSend := f.current
	f.mu.Unlock()
	resp, err := f.next.RoundTrip(req)
	f.mu.Lock()
	defer f.mu.Unlock()
	if counted {
		f.current--
		if err == nil && resp.StatusCode == http.StatusTooManyRequests {
			f.peak = max(f.peak, atSend)
		}
	}
	return resp, err
}

func (f *inFlight) refusedPeak() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.peak
}

// TestBackend_ReadLines_throttledReadsWaitTogether: eight additions reads
// in flight together, all answered 429 with Retry-After: 10, wait together
// while ConnectWise keeps refusing: one request is sent per Retry-After, one
// at a time, until ConnectWise takes one, and then the other seven go. Each
// read used to wait and retry on its own: eight requests per Retry-After
// (without one, each on its own backoff: about two requests a second).
func TestBackend_ReadLines_throttledReadsWaitTogether(t *testing.T) {
	t.Parallel()
	const more = 5 // refusals after the first readers
	counter := &inFlight{next: http.DefaultTransport, skip: readers}
	b, s, sl, ids := throttledReads(t, more, counter)

	lines, err := b.ReadLines(t.Context(), ids, now)
	if err != nil || len(lines) != readers {
		t.Fatalf("ReadLines = %d lines, %v; want %d lines", len(lines), err, readers)
	}
	// The eight refused together, the five refused one after another, the
	// one ConnectWise took and the seven that waited for it.
	if n, want := countRequests(s, http.MethodGet, "/additions"), readers+more+1+(readers-1); n != want {
		t.Errorf("additions requests = %d, want %d", n, want)
	}
	var waited time.Duration
	for _, d := range sl.Waits() {
		waited += d
	}
	// One wait of Retry-After before each request sent while ConnectWise
	// refused them: 60 s for six requests, where each of the eight reads
	// waited on its own (13 waits, and eight requests per Retry-After).
	if want := (more + 1) * retryAfter; waited != want || len(sl.Waits()) != more+1 {
		t.Errorf("waits = %v (%s), want %d of %s (%s)", sl.Waits(), waited, more+1, retryAfter, want)
	}
	if p := counter.refusedPeak(); p != 1 {
		t.Errorf("after the first refusals, %d requests were in flight together while ConnectWise refused them, want 1", p)
	}
}

// TestBackend_ReadLines_lostProbeKeepsThrottle: when the request sent
// alone while ConnectWise refuses them gets no answer of ConnectWise's (its
// connection is lost, or a gateway answers 503) or a 500 (ConnectWise's
// own fault, a timeout: it says nothing of its limit), the other seven
// reads still wait, and go one at a time while ConnectWise refuses them.
// Each used to end the throttle: the seven were sent at once into a PSA
// that was still refusing them.
func TestBackend_ReadLines_lostProbeKeepsThrottle(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		status int
	}{
		{"connection lost", 0},
		{"gateway 503", http.StatusServiceUnavailable},
		{"ConnectWise 500", http.StatusInternalServerError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const more = 5
			counter := &inFlight{next: &loseOne{next: http.DefaultTransport, after: readers, status: tc.status}, skip: readers}
			b, s, _, ids := throttledReads(t, more, counter)

			lines, err := b.ReadLines(t.Context(), ids, now)
			if err != nil || len(lines) != readers {
				t.Fatalf("ReadLines = %d lines, %v; want %d lines", len(lines), err, readers)
			}
			if p := counter.refusedPeak(); p != 1 {
				t.Errorf("after the request without an answer, %d requests were in flight together while ConnectWise refused them, want 1", p)
			}
			// The request without an answer never reached the simulator.
			if n, want := countRequests(s, http.MethodGet, "/additions"), readers+more+1+(readers-1); n != want {
				t.Errorf("additions requests = %d, want %d", n, want)
			}
		})
	}
}

// readers is how many additions reads throttledReads has in flight
// together, and retryAfter the Retry-After of its refusals.
const (
	readers    = connectwise.DefaultMaxConcurrency
	retryAfter = 10 * time.Second
)

// throttledReads starts a simulator with readers agreements of one addition
// each, whose first readers additions reads are held until all have arrived
// and refused together, and the more after them refused too, all with
// Retry-After: 10. It returns a backend whose requests go through
// transport, and the agreements' ids.
func throttledReads(t *testing.T, more int, transport http.RoundTripper) (*connectwise.Backend, *psatest.Server, *resttest.Sleeps, []string) {
	t.Helper()
	s := psatest.Start(t, psatest.WithSystem(psa.SystemConnectWise), psatest.WithClock(func() time.Time { return now }))
	sl := &resttest.Sleeps{}
	b := connectwise.NewBackend(newClient(t, s, sl, connectwise.WithBaseURL(s.ConnectWiseBaseURL()),
		connectwise.WithHTTPClient(&http.Client{Transport: transport})))
	cw := s.ConnectWise()
	p := cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Description: "Backup", Price: 4.5})
	var ids []string
	for i := range readers {
		_, ag := seed(cw, "Customer "+strconv.Itoa(i))
		cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: ag, ProductID: p, Quantity: float64(i + 1)})
		ids = append(ids, id(ag))
	}
	base, err := url.Parse(s.ConnectWiseBaseURL())
	if err != nil {
		t.Fatal(err)
	}
	// The simulator holds the first reads until all eight have arrived, so
	// that it refuses eight reads at once.
	var (
		mu       sync.Mutex
		arrived  int
		together = make(chan struct{})
	)
	s.AddFault(psatest.Fault{Method: http.MethodGet, Path: base.Path + "finance/agreements/*", Status: http.StatusTooManyRequests,
		RetryAfter: retryAfter, Times: readers + more, Received: func() {
			mu.Lock()
			arrived++
			if arrived == readers {
				close(together)
			}
			mu.Unlock()
			<-together
		}})
	s.ResetRequests()
	return b, s, sl, ids
}

// loseOne is an http.RoundTripper that keeps the first additions request
// after the first after ones from the server: it loses its connection
// (status 0), answers status as a gateway would, or, for a 500, as
// ConnectWise does when a request times out in it.
type loseOne struct {
	next   http.RoundTripper
	after  int
	status int

	mu   sync.Mutex
	sent int
}

func (l *loseOne) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.HasSuffix(req.URL.Path, "/additions") {
		l.mu.Lock()
		l.sent++
		lose := l.sent == l.after+1
		l.mu.Unlock()
		switch {
		case lose && l.status == 0:
			return nil, errors.New("read: connection reset by peer")
		case lose && l.status == http.StatusInternalServerError:
			return &http.Response{StatusCode: l.status, Status: http.StatusText(l.status), Header: http.Header{"Content-Type": {"application/json"}},
				Body: io.NopCloser(strings.NewReader(`{"code":"ConnectWiseApi","message":"The operation has timed out"}`)), Request: req}, nil
		case lose:
			return &http.Response{StatusCode: l.status, Status: http.StatusText(l.status), Header: http.Header{"Content-Type": {"text/html"}},
				Body: io.NopCloser(strings.NewReader("<html>upstream unavailable</html>")), Request: req}, nil
		}
	}
	return l.next.RoundTrip(req)
}

// TestClient_throttleWaitsWhatIsLeft: a request that comes while the wait
// after a refusal runs waits what is left of it, not the whole
// Retry-After again from its own start.
func TestClient_throttleWaitsWhatIsLeft(t *testing.T) {
	t.Parallel()
	c, _, sl, ags := refusedOnce(t, 10*time.Second, 2)
	ag1, ag2 := ags[0], ags[1]
	clock := now
	c.SetThrottleClock(func() time.Time { return clock })

	if _, _, err := c.AgreementAdditions.List(t.Context(), ag1, nil); err == nil {
		t.Fatal("List of the refused agreement succeeded, want the 429")
	}
	clock = clock.Add(4 * time.Second)
	if _, _, err := c.AgreementAdditions.List(t.Context(), ag2, nil); err != nil {
		t.Fatalf("List of another agreement: %v", err)
	}
	if w := sl.Waits(); len(w) != 1 || w[0] != 6*time.Second {
		t.Errorf("waits of a request 4s after a refusal with Retry-After: 10 = %v, want what is left, 6s", w)
	}
}

// TestClient_throttleHoldsOtherRequests: a 429 with Retry-After holds back
// the client's next request, another caller's and another path's, for the
// Retry-After before it is first sent, though the refused read itself was
// not retried (retries disabled); once ConnectWise takes a request, the
// next goes at once.
func TestClient_throttleHoldsOtherRequests(t *testing.T) {
	t.Parallel()
	c, s, sl, ags := refusedOnce(t, 7*time.Second, 3)
	ag1, ag2, ag3 := ags[0], ags[1], ags[2]

	if _, _, err := c.AgreementAdditions.List(t.Context(), ag1, nil); err == nil {
		t.Fatal("List of the refused agreement succeeded, want the 429")
	}
	if w := sl.Waits(); len(w) != 0 {
		t.Fatalf("waits after the refused read = %v, want none (retries disabled)", w)
	}
	if _, _, err := c.AgreementAdditions.List(t.Context(), ag2, nil); err != nil {
		t.Fatalf("List of another agreement: %v", err)
	}
	if w := sl.Waits(); len(w) != 1 || w[0] != 7*time.Second {
		t.Errorf("waits before the next request = %v, want the Retry-After, 7s", w)
	}
	if _, _, err := c.AgreementAdditions.List(t.Context(), ag3, nil); err != nil {
		t.Fatalf("List of a third agreement: %v", err)
	}
	if w := sl.Waits(); len(w) != 1 {
		t.Errorf("waits = %v, want no more once ConnectWise took a request", w)
	}
	if n := countRequests(s, http.MethodGet, "/additions"); n != 3 {
		t.Errorf("additions requests = %d, want 3", n)
	}
}

// refusedOnce starts a simulator with n agreements, whose first one's
// additions are refused once (429) with retryAfter, and returns a client
// of it with retries disabled, the simulator, the client's sleeps and the
// agreements' ids.
func refusedOnce(t *testing.T, retryAfter time.Duration, n int) (*connectwise.Client, *psatest.Server, *resttest.Sleeps, []int64) {
	t.Helper()
	s := psatest.Start(t, psatest.WithSystem(psa.SystemConnectWise), psatest.WithClock(func() time.Time { return now }))
	sl := &resttest.Sleeps{}
	c := newClient(t, s, sl, connectwise.WithBaseURL(s.ConnectWiseBaseURL()), connectwise.WithMaxRetries(0))
	var ags []int64
	for i := range n {
		_, ag := seed(s.ConnectWise(), "Customer "+strconv.Itoa(i))
		ags = append(ags, ag)
	}
	base, err := url.Parse(s.ConnectWiseBaseURL())
	if err != nil {
		t.Fatal(err)
	}
	s.AddFault(psatest.Fault{Method: http.MethodGet, Path: base.Path + "finance/agreements/" + id(ags[0]) + "/additions",
		Status: http.StatusTooManyRequests, RetryAfter: retryAfter, Times: 1})
	return c, s, sl, ags
}

package resttest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// failures is a testing.TB that records what it is told to report, so that
// a test can check the failures a helper reports.
type failures struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (f *failures) Helper() {}

func (f *failures) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs = append(f.errs, fmt.Sprintf(format, args...))
}

func (f *failures) reported() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.errs)
}

// get sends a GET to url and returns the answer, its body read.
func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestMount(t *testing.T) {
	t.Parallel()
	for _, base := range []string{"/v2025_1/apis/3.0", "/bms-root/"} {
		t.Run(base, func(t *testing.T) {
			t.Parallel()
			tb := &failures{TB: t}
			mux, serverURL := Mount(tb, base)
			mux.HandleFunc("GET /company/companies/1", func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprint(w, r.URL.Path)
			})
			prefix := serverURL + "/" + strings.Trim(base, "/")
			if resp, body := get(t, prefix+"/company/companies/1"); resp.StatusCode != http.StatusOK || body != "/company/companies/1" {
				t.Errorf("GET under the base path = %d %q, want 200 with the path relative to it", resp.StatusCode, body)
			}
			if errs := tb.reported(); len(errs) != 0 {
				t.Errorf("a request under the base path reported %q", errs)
			}
			if resp, _ := get(t, serverURL+"/company/companies/1"); resp.StatusCode != http.StatusBadRequest {
				t.Errorf("GET without the base path = %d, want 400", resp.StatusCode)
			}
			if errs := tb.reported(); len(errs) != 1 {
				t.Errorf("a request that lost the base path reported %q, want one failure", errs)
			}
		})
	}
}

func TestAnswer(t *testing.T) {
	t.Parallel()
	mux, serverURL := Mount(t, "/api")
	refusal := &Answer{Status: http.StatusTooManyRequests, RetryAfter: "60", Body: `{"code":"TooManyRequests"}`}
	mux.Handle("/refused", refusal)
	mux.Handle("/ok", &Answer{Body: `{"id":1}`})
	for range 2 {
		resp, body := get(t, serverURL+"/api/refused")
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "60" || body != refusal.Body {
			t.Errorf("refusal = %d, Retry-After %q, %s; want 429, 60 and its body", resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
	}
	if n := refusal.Calls(); n != 2 {
		t.Errorf("refusal.Calls() = %d, want 2", n)
	}
	if resp, body := get(t, serverURL+"/api/ok"); resp.StatusCode != http.StatusOK || body != `{"id":1}` {
		t.Errorf("answer without a status = %d %q, want 200 with its body", resp.StatusCode, body)
	}
}

func TestSleeps(t *testing.T) {
	t.Parallel()
	var s Sleeps
	if err := s.Sleep(t.Context(), time.Second); err != nil {
		t.Errorf("Sleep = %v, want nil", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Sleep(ctx, time.Minute); !errors.Is(err, context.Canceled) {
		t.Errorf("Sleep with a canceled context = %v, want context.Canceled", err)
	}
	if got, want := s.Waits(), []time.Duration{time.Second, time.Minute}; !slices.Equal(got, want) {
		t.Errorf("Waits() = %v, want %v", got, want)
	}
}

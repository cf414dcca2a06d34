package autotask

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// TestClient_followsNoRedirectElsewhere: an Autotask URL (a base_url left
// pointing at an old host, a proxy) that redirects to another host. Go's
// client strips only Authorization and Cookie there, so the Secret and
// ApiIntegrationCode headers went along. They now stay behind.
func TestClient_followsNoRedirectElsewhere(t *testing.T) {
	t.Parallel()
	var (
		mu  sync.Mutex
		got []string
	)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, "Secret="+r.Header.Get("Secret")+" ApiIntegrationCode="+r.Header.Get("ApiIntegrationCode"))
		mu.Unlock()
		w.WriteHeader(http.StatusNotFound)
	}))
	t.Cleanup(other.Close)
	otherURL := strings.Replace(other.URL, "127.0.0.1", "localhost", 1) // another host name
	moved := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, otherURL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(moved.Close)
	c, err := NewClient(WithBaseURL(moved.URL+"/atservicesrest/"), WithCredentials("api@msp.example", "redirect-secret", "redirect-code"), WithMaxRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = c.Companies.Get(t.Context(), 1)
	if err == nil {
		t.Error("Companies.Get through a redirect to another host succeeded")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != "Secret= ApiIntegrationCode=" {
		t.Errorf("the host the redirect names got: %s; want one request without the credentials", strings.Join(got, "; "))
	}
}

package kaseyabms

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// TestClient_signInFollowsNoRedirectElsewhere: a Kaseya BMS URL that
// answers the sign-in with a 307 to another host. Go's client sends a
// 307's body again, and the sign-in's body holds the password: the other
// host got it. The redirect is now the answer.
func TestClient_signInFollowsNoRedirectElsewhere(t *testing.T) {
	t.Parallel()
	var (
		mu  sync.Mutex
		got []string
	)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.Path+" "+string(body))
		mu.Unlock()
		w.WriteHeader(http.StatusNotFound)
	}))
	t.Cleanup(other.Close)
	otherURL := strings.Replace(other.URL, "127.0.0.1", "localhost", 1) // another host name
	moved := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, otherURL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(moved.Close)
	c, err := NewClient(WithBaseURL(moved.URL), WithCredentials("api@msp.example", "redirect-password", "tenant1"), WithMaxRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Authenticate(t.Context()); err == nil || !strings.Contains(err.Error(), "307") {
		t.Errorf("Authenticate through a redirect to another host = %v, want an error naming the 307", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 0 {
		t.Errorf("the host the redirect names got: %s", strings.Join(got, "; "))
	}
}

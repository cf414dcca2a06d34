package sophos_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// newTestServer serves h on a loopback port for the test and returns its URL.
func newTestServer(t testing.TB, h http.Handler) string {
	t.Helper()
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts.URL
}

package rest

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/redact"
)

// TestNotJSON checks which 2xx bodies are taken for an answer that is not
// the API's: not JSON at all, never JSON cut short or of another type
// (those stay decoding errors), and that the error describes an HTML page
// by its title only, redacted and cut short.
func TestNotJSON(t *testing.T) {
	t.Parallel()
	req := httptest.NewRequest(http.MethodGet, "https://api.example/v1/things?name=Acme", nil)
	long := strings.Repeat("x", 100)
	for _, tc := range []struct {
		name, ct, body string
		want           string // "" = no NotAPIError
	}{
		{"object", "application/json", `{"items":[]}`, ""},
		{"cut short", "application/json", `{"items":[{"id"`, ""},
		{"list", "application/json", ` [1,2]`, ""},
		{"bom", "application/json", "\xef\xbb\xbf{}", ""},
		{"number", "application/json", `42`, ""},
		{"empty", "application/json", ``, ""},
		{"html", "text/html", "<!DOCTYPE html><html><head><title>\n Sign in &amp; go </title></head><body><form><input name=Password></form></body></html>",
			`an HTML page titled "Sign in & go"`},
		{"html as json", "application/json", "<html><body>upstream hiccup</body></html>", "an HTML page"},
		{"secret in title", "text/html", "<title>Welcome s3cr3t-key</title>", `titled "Welcome [REDACTED]"`},
		{"long title", "text/html", "<title>" + long + "</title>", `titled "` + long[:60] + `…"`},
		{"plain text", "text/plain; charset=utf-8", "Service Unavailable", "not JSON (text/plain)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp := &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {tc.ct}}, Request: req}
			na := NotJSON(psa.SystemAutotask, req, resp, []byte(tc.body), redact.New("s3cr3t-key"))
			if tc.want == "" {
				if na != nil {
					t.Fatalf("NotJSON(%q) = %v, want nil", tc.body, na)
				}
				return
			}
			if na == nil {
				t.Fatalf("NotJSON(%q) = nil, want an error saying %q", tc.body, tc.want)
			}
			msg := na.Error()
			if !errors.Is(na, psa.ErrNotAPI) || !strings.Contains(msg, tc.want) {
				t.Errorf("error %q, want psa.ErrNotAPI saying %q", msg, tc.want)
			}
			for _, bad := range []string{"name=Acme", "Password", "<form", "s3cr3t"} {
				if strings.Contains(msg, bad) {
					t.Errorf("error %q quotes %q", msg, bad)
				}
			}
		})
	}
}

// TestNotAPI_redirect checks that the error names the host that answered
// when it is not the request's: the client followed a redirect.
func TestNotAPI_redirect(t *testing.T) {
	t.Parallel()
	req := httptest.NewRequest(http.MethodPost, "https://api.example/v1/things", nil)
	final := httptest.NewRequest(http.MethodGet, "https://sso.example/login", nil)
	resp := &http.Response{StatusCode: http.StatusOK, Request: final}
	msg := NotAPI(psa.SystemKaseyaBMS, req, resp, "an HTML page").Error()
	for _, want := range []string{"kaseyabms: POST https://api.example/v1/things:", "HTTP 200 from sso.example, after a redirect", "not the Kaseya BMS API's", "base_url"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q, want it to say %q", msg, want)
		}
	}
	if msg := NotAPI(psa.SystemKaseyaBMS, req, &http.Response{StatusCode: 200, Request: req}, "x").Error(); strings.Contains(msg, "redirect") {
		t.Errorf("error %q speaks of a redirect that did not happen", msg)
	}
}

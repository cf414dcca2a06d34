package daemon

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"strings"
	"testing"
)

// fuzzAPIMethods are the methods FuzzAPI sends.
var fuzzAPIMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut}

// fuzzAPIOff are the endpoints FuzzAPI leaves out: they run a pass, a
// plan, a check, a billing impact report or a reload against the PSA, or
// copy the database, which their own tests cover and which would make an
// iteration slow.
var fuzzAPIOff = []string{"/api/v1/tickets", "/api/v1/check", "/api/v1/impact", "/api/v1/backup", "/-/reload", "/ui/sync"}

// FuzzAPI sends arbitrary requests (method, path with query, If-Match,
// body) with the API token to the daemon's HTTP API, whose export is
// stored by psa-syncd (export_url: self, so that PUT /api/v1/export takes
// a body). Bad input must be refused with a 4xx naming what is wrong, not
// a panic or a 500, and a JSON answer must be JSON.
func FuzzAPI(f *testing.F) {
	e := dtSetup(f, dtOptions{token: dtToken, exportURL: ExportSelf, noExport: true})
	doc, err := e.doc.Encode()
	if err != nil {
		f.Fatal(err)
	}
	h := e.d.Handler()
	put := httptest.NewRequestWithContext(f.Context(), http.MethodPut, "/api/v1/export", strings.NewReader(string(doc)))
	put.Header.Set("Authorization", "Bearer "+dtToken)
	put.Header.Set("If-None-Match", "*")
	if rec := httptest.NewRecorder(); func() int { h.ServeHTTP(rec, put); return rec.Code }() >= 300 {
		f.Fatalf("storing the export: %d %s", rec.Code, rec.Body)
	}
	for _, s := range []struct {
		method          uint8
		target, ifMatch string
		body            string
	}{
		{0, "/api/v1/customers?status=failed&usage_sync=true", "", ""},
		{0, "/api/v1/runs?limit=2&before=5", "", ""},
		{0, "/api/v1/runs/sync-1", "", ""},
		{0, "/api/v1/plan?customer=cust-acme", "", ""},
		{0, "/api/v1/ledger?customer=cust-acme&contract=1&service=2&period=2026-11&before=10&after=1&limit=5", "", ""},
		{0, "/api/v1/export/history?limit=3", "", ""},
		{0, "/api/v1/unmapped", "", ""},
		{0, "/api/v1/intents", "", ""},
		{0, "/customers/file/cust-acme", "", ""},
		{1, "/api/v1/sync", "", `{"customer": "cust-acme", "approve": true, "service": "2", "units": 3}`},
		{1, "/api/v1/intents/1/resolve", "", `{"posted": false, "note": "checked in the PSA"}`},
		{2, "/api/v1/export", "*", string(doc)},
		{2, "/api/v1/export", `"1"`, `{"version":1}`},
	} {
		f.Add(s.method, s.target, s.ifMatch, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, m uint8, target, ifMatch string, body []byte) {
		u, err := url.ParseRequestURI(target)
		if err != nil || u.Host != "" || u.Scheme != "" || !strings.HasPrefix(target, "/") {
			return
		}
		method := fuzzAPIMethods[int(m)%len(fuzzAPIMethods)]
		clean := path.Clean(u.Path)
		for _, p := range fuzzAPIOff {
			if strings.HasPrefix(clean, p) || method == http.MethodPost && strings.HasPrefix(clean, "/api/v1/plan") {
				return
			}
		}
		req := httptest.NewRequestWithContext(t.Context(), method, target, strings.NewReader(string(body)))
		req.Header.Set("Authorization", "Bearer "+dtToken)
		if ifMatch != "" {
			if ifMatch == "*" {
				req.Header.Set("If-None-Match", "*")
			} else {
				req.Header.Set("If-Match", ifMatch)
			}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("%s %q (%d bytes of body) = %d %s; want a 4xx for bad input", method, target, len(body), rec.Code, rec.Body)
		}
		if strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") && !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("%s %q = %d with a body that is not JSON: %.200s", method, target, rec.Code, rec.Body)
		}
	})
}

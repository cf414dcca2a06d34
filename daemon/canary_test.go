package daemon

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	htmltemplate "html/template"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/psa-sync/terraform-provider-psa/daemon/state/pgtest"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// TestDaemon_canarySecretsStayOut: with the Autotask secret, the
// integration code and the API token set to canaries, and an Autotask that
// quotes each request (headers included) in its errors, on every call or
// on writes only (refused, or refused for the rate limit), none of them
// shows, as is or URL- or base64-encoded, in what a user of the running
// daemon sees: the API's answers, the status page, /metrics, the logs at
// debug level, or the state database.
func TestDaemon_canarySecretsStayOut(t *testing.T) {
	t.Parallel()
	const (
		atSec  = "CANARY-at-secret/+&4j9p"
		atCode = "CANARY-at-code-2w6r"
		token  = "CANARY-api-token-7b3x"
	)
	var logs bytes.Buffer
	e := dtSetup(t, dtOptions{token: token, simOptions: []psatest.Option{psatest.WithAutotaskCredentials("api@msp.example", atSec, atCode)},
		daemonOpts: Options{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	hit := func() {
		for _, p := range []struct{ m, path, body string }{
			{"POST", "/api/v1/plan", ""}, {"POST", "/api/v1/tickets", `{"dry_run":true}`}, {"POST", "/api/v1/tickets", ""},
			{"GET", "/api/v1/customers", ""}, {"GET", "/api/v1/runs", ""}, {"GET", "/api/v1/plan", ""}, {"GET", "/api/v1/intents", ""},
			{"GET", "/api/v1/ledger", ""}, {"GET", "/api/v1/unmapped", ""}, {"GET", "/", ""}, {"GET", "/customers/file/cust-acme", ""},
			{"GET", "/metrics", ""}, {"GET", "/-/ready", ""}, {"GET", "/api/v1/export", ""}, {"GET", "/api/v1/runs/1", ""},
		} {
			rec := dtServe(t, e.d, p.m, p.path, token, p.body)
			fmt.Fprintf(&all, "%s %s: %d %s\n", p.m, p.path, rec.Code, rec.Body)
		}
	}
	for _, f := range []psatest.Fault{
		{Status: http.StatusUnauthorized, EchoRequest: true},
		{Method: http.MethodPost, Path: "/atservicesrest/v1.0/contractserviceadjustments", Status: http.StatusBadRequest, EchoRequest: true},
		{Method: http.MethodPost, Path: "/atservicesrest/v1.0/contractserviceadjustments", Status: http.StatusTooManyRequests, EchoRequest: true},
	} {
		e.sim.ClearFaults()
		e.sim.AddFault(f)
		_, err := e.d.SyncOnce(t.Context(), usage.PassOptions{})
		fmt.Fprintf(&all, "sync: %v\n", err)
		hit()
	}
	var state []byte
	files, _ := filepath.Glob(filepath.Join(e.dir, "state", "*"))
	for _, f := range files {
		if d, err := os.ReadFile(f); err == nil {
			state = append(state, d...)
		}
	}
	out := all.String() + logs.String()
	if !strings.Contains(out, "[REDACTED]") {
		t.Errorf("nothing shows an echoed request redacted:\n%s", out)
	}
	for _, s := range []string{atSec, atCode, token} {
		quoted, _ := json.Marshal(s) // & is \u0026 in JSON
		var page strings.Builder     // and &amp; on the status page
		_ = htmltemplate.Must(htmltemplate.New("").Parse("{{.}}")).Execute(&page, s)
		for _, form := range []string{s, url.QueryEscape(s), url.PathEscape(s), base64.StdEncoding.EncodeToString([]byte(s)), string(quoted[1 : len(quoted)-1]), page.String()} {
			if i := strings.Index(out, form); i >= 0 {
				t.Errorf("the API, the status page, /metrics or the logs show %q: …%s…", form, out[max(0, i-200):min(len(out), i+len(form)+50)])
			}
			if bytes.Contains(state, []byte(form)) {
				t.Errorf("the state database contains %q", form)
			}
		}
	}
}

// TestDaemon_canaryStandbySecretsStayOut: what answers at the active
// instance's advertised URL (a proxy, a server that is not psa-syncd, one
// that leaks) may quote the request a standby's status page makes there
// with the API token, or a PSA credential, in an error or in an answer
// that looks right: neither the standby's page (its redirect included)
// nor its logs show them.
func TestDaemon_canaryStandbySecretsStayOut(t *testing.T) {
	t.Parallel()
	const token = "CANARY-standby-token-5r2k"
	pgURL, err := pgtest.New(t).CreateDatabase(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	const atSec = "CANARY-standby-at-secret/+&3m"
	var status atomic.Int32
	var unasked atomic.Bool
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		quoted := "echo: " + r.Method + " " + r.URL.Path + " Authorization: " + r.Header.Get("Authorization")
		if status.Load() == http.StatusInternalServerError {
			quoted = "autotask refused Secret: " + atSec
		}
		w.Header().Set("Content-Type", "application/json")
		if s := int(status.Load()); s/100 != 2 {
			body, _ := json.Marshal(map[string]string{"error": quoted})
			switch {
			case unasked.Load():
				// Compressed all the same, in an encoding not asked for.
				w.Header().Set("Content-Encoding", "br")
			case strings.Contains(r.Header.Get("Accept-Encoding"), "gzip"):
				var z bytes.Buffer
				zw := gzip.NewWriter(&z)
				_, _ = zw.Write(body)
				_ = zw.Close()
				body = z.Bytes()
				w.Header().Set("Content-Encoding", "gzip")
			}
			w.WriteHeader(s)
			_, _ = w.Write(body)
			return
		}
		ticket := map[string]string{"run_id": quoted, "status": "queued", "error": quoted}
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusAccepted)
			_ = json.NewEncoder(w).Encode(ticket)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"request": ticket})
	}))
	t.Cleanup(echo.Close)
	e := dtSetup(t, dtOptions{token: token, state: fmt.Sprintf("state:\n  driver: postgres\n  url: %q\n  advertise_url: %s\n", pgURL, echo.URL),
		simOptions: []psatest.Option{psatest.WithAutotaskCredentials("api@msp.example", atSec, "CANARY-standby-code")}})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := e.d.BecomeActive(t.Context()); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(e.cfgPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	b, err := New(cfg, e.cfgPath, Options{Registry: prometheus.NewRegistry(),
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := b.BecomeActive(t.Context()); err == nil {
		t.Fatal("the second instance became active; want a standby")
	}
	c := newUIClient(t, b)
	m := csrfField.FindStringSubmatch(c.do(http.MethodGet, "/", nil).Body.String())
	if m == nil {
		t.Fatal("no CSRF token on the status page")
	}
	c.do(http.MethodPost, "/ui/sign-in", url.Values{"token": {token}, "csrf": {m[1]}, "next": {"/"}})
	var all strings.Builder
	for _, s := range []int{http.StatusBadGateway, http.StatusInternalServerError, http.StatusAccepted} {
		status.Store(int32(s))
		rec := c.do(http.MethodPost, "/ui/sync", url.Values{"csrf": {m[1]}, "customer": {"cust-acme"}, "next": {"/"}})
		loc := rec.Header().Get("Location")
		fmt.Fprintf(&all, "%d: POST /ui/sync: %d %s\n", s, rec.Code, loc)
		if u, err := url.Parse(loc); err == nil {
			fmt.Fprintf(&all, "%s\n%s\n", u.Query(), c.do(http.MethodGet, loc, nil).Body)
		}
	}
	// The standby's API relays what the active instance answers, the
	// error answer gzip-compressed when the client asks for it (curl
	// --compressed, a browser), or compressed unasked.
	for _, s := range []int{http.StatusBadGateway, http.StatusInternalServerError} {
		status.Store(int32(s))
		for _, enc := range []string{"", "gzip, deflate, br", "unasked"} {
			unasked.Store(enc == "unasked")
			req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/api/v1/sync", strings.NewReader(`{"customer":"cust-acme"}`))
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Accept-Encoding", enc)
			rec := httptest.NewRecorder()
			b.Handler().ServeHTTP(rec, req)
			body := rec.Body.Bytes()
			if rec.Header().Get("Content-Encoding") == "gzip" {
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				body, _ = io.ReadAll(zr)
			}
			fmt.Fprintf(&all, "%d: POST /api/v1/sync (Accept-Encoding %q): %d %s %s\n", s, enc, rec.Code, rec.Header().Get("Content-Encoding"), body)
		}
	}
	out := all.String() + logs.String()
	if !strings.Contains(out, "[REDACTED]") {
		t.Errorf("nothing shows the echoed request redacted:\n%s", out)
	}
	for _, s := range []string{token, atSec} {
		quoted, _ := json.Marshal(s) // & is \u0026 in JSON
		var page strings.Builder     // and &amp; on the status page
		_ = htmltemplate.Must(htmltemplate.New("").Parse("{{.}}")).Execute(&page, s)
		for _, form := range []string{s, url.QueryEscape(s), base64.StdEncoding.EncodeToString([]byte(s)), string(quoted[1 : len(quoted)-1]), page.String()} {
			if i := strings.Index(out, form); i >= 0 {
				t.Errorf("the standby's page or logs show %q: …%s…", form, out[max(0, i-200):min(len(out), i+len(form)+50)])
			}
		}
	}
}

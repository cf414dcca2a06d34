package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestHandler_impact: POST /api/v1/impact hands the plan and the format
// to the Impact hook with the daemon's running export, backend, source and
// state database, and answers its report; what it refuses is answered
// before the hook runs (no token 401, a body over the plan's cap 413, a
// body that is not the request 400, no export loaded 503, a second report
// within freshPlanInterval 429 with Retry-After), and a plan the hook
// cannot read is the request's fault (400), not the PSA's.
func TestHandler_impact(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, time.November, 16, 8, 0, 0, 0, time.UTC)
	var got []ImpactRequest
	hook := func(_ context.Context, req ImpactRequest, w io.Writer) error {
		got = append(got, req)
		if !json.Valid(req.Plan) || !strings.Contains(string(req.Plan), "resource_changes") {
			return fmt.Errorf("%w: terraform_plan: not the JSON of terraform show -json", ErrImpactRequest)
		}
		_, err := fmt.Fprintf(w, "report in %s\n", req.Format)
		return err
	}
	e := dtSetup(t, dtOptions{token: dtToken, daemonOpts: Options{Impact: hook, Now: func() time.Time { return now }}})
	const plan = `{"terraform_plan": {"format_version": "1.2", "resource_changes": []}, "format": "markdown"}`
	if rec := dtServe(t, e.d, http.MethodPost, "/api/v1/impact", dtToken, plan); rec.Code != http.StatusServiceUnavailable || len(got) != 0 {
		t.Errorf("POST /api/v1/impact before the export is loaded = %d %s (hook called %d times), want 503", rec.Code, rec.Body, len(got))
	}
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}

	if rec := dtServe(t, e.d, http.MethodPost, "/api/v1/impact", "", plan); rec.Code != http.StatusUnauthorized {
		t.Errorf("POST /api/v1/impact without the token = %d %s, want 401", rec.Code, rec.Body)
	}
	for body, want := range map[string]string{
		"nope":                   "the request body must be a JSON object",
		`{"format": "markdown"}`: "no terraform_plan",
		`{"terraform_plan": {}, "format": "table", "customer": "acme"}`: `unknown field \"customer\"`,
	} {
		if rec := dtServe(t, e.d, http.MethodPost, "/api/v1/impact", dtToken, body); rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("POST /api/v1/impact %s = %d %s, want 400 saying %q", body, rec.Code, rec.Body, want)
		}
	}
	rec := dtServe(t, e.d, http.MethodPost, "/api/v1/impact", dtToken, plan)
	var r ImpactReport
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &r) != nil || r.Report != "report in markdown\n" {
		t.Fatalf("POST /api/v1/impact = %d %s, want 200 and the hook's report", rec.Code, rec.Body)
	}
	last := got[len(got)-1]
	if cl := e.d.clients.Load(); last.Export != e.d.Export() || last.Config != e.d.Config() || last.Backend != cl.backend || last.Source != cl.source || last.State != e.d.db {
		t.Errorf("the hook was given %+v, want the daemon's running config, export, backend, source and state database", last)
	}
	if rec := dtServe(t, e.d, http.MethodPost, "/api/v1/impact", dtToken, plan); rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "31" {
		t.Errorf("a second POST /api/v1/impact at once = %d %s (Retry-After %q), want 429 with Retry-After 31", rec.Code, rec.Body, rec.Header().Get("Retry-After"))
	}
	now = now.Add(freshPlanInterval)
	const notAPlan = `{"terraform_plan": {"values": {}}}`
	if rec := dtServe(t, e.d, http.MethodPost, "/api/v1/impact", dtToken, notAPlan); rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "terraform_plan: not the JSON of terraform show -json") {
		t.Errorf("POST /api/v1/impact %s = %d %s, want 400 saying why", notAPlan, rec.Code, rec.Body)
	}

	// A body larger than a plan may be is refused as it is read.
	big := io.MultiReader(strings.NewReader(`{"terraform_plan": "`), io.LimitReader(neverEnding('a'), maxImpactBody))
	req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/api/v1/impact", big)
	req.Header.Set("Authorization", "Bearer "+dtToken)
	rec = httptest.NewRecorder()
	e.d.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("POST /api/v1/impact of %d bytes = %d %s, want 413", maxImpactBody+19, rec.Code, rec.Body)
	}

	off := dtSetup(t, dtOptions{token: dtToken})
	if err := off.d.Reload(); err != nil {
		t.Fatal(err)
	}
	if rec := dtServe(t, off.d, http.MethodPost, "/api/v1/impact", dtToken, plan); rec.Code != http.StatusNotImplemented {
		t.Errorf("POST /api/v1/impact without an Impact hook = %d %s, want 501", rec.Code, rec.Body)
	}
}

// neverEnding reads as an endless run of its byte.
type neverEnding byte

func (b neverEnding) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}

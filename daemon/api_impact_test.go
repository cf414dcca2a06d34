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

// impactHook is an Options.Impact that refuses a plan without
// resource_changes as the request's and reports the format; got gets what
// each report it read was computed with.
func impactHook(got *[]ImpactRequest) func(plan []byte, format string) (ImpactFunc, error) {
	return func(plan []byte, format string) (ImpactFunc, error) {
		if !json.Valid(plan) || !strings.Contains(string(plan), "resource_changes") {
			return nil, fmt.Errorf("%w: terraform_plan: not the JSON of terraform show -json", ErrImpactRequest)
		}
		return func(_ context.Context, req ImpactRequest, w io.Writer) error {
			*got = append(*got, req)
			_, err := fmt.Fprintf(w, "report in %s\n", format)
			return err
		}, nil
	}
}

// TestHandler_impact: POST /api/v1/impact hands the plan and the format
// to the Impact hook and computes what it read with the daemon's running
// export, backend, source and state database, and answers its report; what
// it refuses is answered before the report is computed (no token 401, a
// body over the plan's cap 413, a body that is not the request 400, a plan
// the hook cannot read 400, no export loaded 503, a second report within
// freshPlanInterval 429 with Retry-After), and a refused request does not
// take the report's turn.
func TestHandler_impact(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, time.November, 16, 8, 0, 0, 0, time.UTC)
	var got []ImpactRequest
	e := dtSetup(t, dtOptions{token: dtToken, daemonOpts: Options{Impact: impactHook(&got), Now: func() time.Time { return now }}})
	const plan = `{"terraform_plan": {"format_version": "1.2", "resource_changes": []}, "format": "markdown"}`
	if rec := dtServe(t, e.d, http.MethodPost, "/api/v1/impact", dtToken, plan); rec.Code != http.StatusServiceUnavailable || len(got) != 0 {
		t.Errorf("POST /api/v1/impact before the export is loaded = %d %s (report computed %d times), want 503", rec.Code, rec.Body, len(got))
	}
	const notAPlan = `{"terraform_plan": {"values": {}}}`
	if rec := dtServe(t, e.d, http.MethodPost, "/api/v1/impact", dtToken, notAPlan); rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "terraform_plan: not the JSON of terraform show -json") {
		t.Errorf("POST /api/v1/impact %s before the export is loaded = %d %s, want 400 saying why", notAPlan, rec.Code, rec.Body)
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
	// A plan refused takes no turn: the report asked for at once after it
	// is computed.
	if rec := dtServe(t, e.d, http.MethodPost, "/api/v1/impact", dtToken, notAPlan); rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "terraform_plan: not the JSON of terraform show -json") {
		t.Errorf("POST /api/v1/impact %s = %d %s, want 400 saying why", notAPlan, rec.Code, rec.Body)
	}
	rec := dtServe(t, e.d, http.MethodPost, "/api/v1/impact", dtToken, plan)
	var r ImpactReport
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &r) != nil || r.Report != "report in markdown\n" {
		t.Fatalf("POST /api/v1/impact = %d %s, want 200 and the hook's report", rec.Code, rec.Body)
	}
	last := got[len(got)-1]
	if cl := e.d.clients.Load(); last.Export != e.d.Export() || last.Config != e.d.Config() || last.Backend != cl.backend || last.Source != cl.source || last.State != e.d.db || last.NoExport != "" {
		t.Errorf("the hook was given %+v, want the daemon's running config, export, backend, source and state database", last)
	}
	if rec := dtServe(t, e.d, http.MethodPost, "/api/v1/impact", dtToken, plan); rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "31" {
		t.Errorf("a second POST /api/v1/impact at once = %d %s (Retry-After %q), want 429 with Retry-After 31", rec.Code, rec.Body, rec.Header().Get("Retry-After"))
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

// TestHandler_impactBeforeTheFirstApply: while the export store holds no
// mapping export (before the first apply), POST /api/v1/impact compares
// the plan with no mappings, as the report run beside the daemon does, and
// the report names the store; an export that is there but refused is
// still a 503.
func TestHandler_impactBeforeTheFirstApply(t *testing.T) {
	t.Parallel()
	var got []ImpactRequest
	e := dtSetup(t, dtOptions{token: dtToken, noExport: true, daemonOpts: Options{Impact: impactHook(&got)}})
	if err := e.d.Reload(); err == nil {
		t.Fatal("Reload with no export file = nil, want its error")
	}
	const plan = `{"terraform_plan": {"format_version": "1.2", "resource_changes": []}}`
	rec := dtServe(t, e.d, http.MethodPost, "/api/v1/impact", dtToken, plan)
	if rec.Code != http.StatusOK || len(got) != 1 {
		t.Fatalf("POST /api/v1/impact with no export written yet = %d %s, want 200", rec.Code, rec.Body)
	}
	if req := got[0]; req.Export == nil || len(req.Export.CustomerMappings) != 0 || req.NoExport != e.d.Config().ExportName() {
		t.Errorf("the report was computed with export %+v, NoExport %q; want an empty export and NoExport %q", req.Export, req.NoExport, e.d.Config().ExportName())
	}

	dtWrite(t, e.exportPath, "{not an export")
	if err := e.d.Reload(); err == nil {
		t.Fatal("Reload with an export that is not JSON = nil, want its error")
	}
	if rec := dtServe(t, e.d, http.MethodPost, "/api/v1/impact", dtToken, plan); rec.Code != http.StatusServiceUnavailable || len(got) != 1 {
		t.Errorf("POST /api/v1/impact with a refused export = %d %s, want 503", rec.Code, rec.Body)
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

// TestDaemon_impactOnStandby: a standby computes a billing impact report
// itself, not forwarded, with its own backend and the shared state
// database, where its Kaseya BMS calls count as the active instance's do
// (api_calls is no fenced write).
func TestDaemon_impactOnStandby(t *testing.T) {
	t.Parallel()
	const token = "s3cret-token"
	a, b, standby := dtActiveAndStandby(t, token)
	var onActive, onStandby []ImpactRequest
	a.impact, b.impact = impactHook(&onActive), impactHook(&onStandby)
	code, body := dtPostToken(t, standby+"/api/v1/impact", token, `{"terraform_plan": {"format_version": "1.2", "resource_changes": []}}`)
	if code != http.StatusOK || len(onStandby) != 1 || len(onActive) != 0 {
		t.Fatalf("POST /api/v1/impact on the standby = %d %s (computed %d times there, %d on the active instance), want 200 computed there",
			code, body, len(onStandby), len(onActive))
	}
	if got := onStandby[0]; got.Backend != b.clients.Load().backend || got.State != b.db || got.Export != b.Export() {
		t.Errorf("the standby computed the report with %+v, want its own backend, state database and export", got)
	}
}

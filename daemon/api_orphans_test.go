package daemon

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
)

// TestHandler_clearOrphans: POST /api/v1/orphans/clear clears one orphaned
// line the last pass listed, or all of them: they leave GET
// /api/v1/unmapped and psa_sync_orphaned_lines at once. It takes the token;
// a body naming no line, half a line, or a line and all is a 400, a line
// not listed a 404, and nothing is cleared by any of them.
func TestHandler_clearOrphans(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, time.December, 1, 8, 0, 0, 0, time.UTC)
	e := dtSetup(t, dtOptions{token: dtToken, daemonOpts: Options{Now: func() time.Time { return now }}})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	rep := usage.UnmappedReport{Time: now, RunID: 7, Source: "sophos", Unmapped: usage.Unmapped{Orphaned: []usage.OrphanedLine{
		{Reason: usage.OrphanCustomer, CustomerID: "cust-a", ContractID: "800", ServiceID: "700", Quantity: 3, Since: "2026-11-01", RunID: 5, Seq: 11},
		{Reason: usage.OrphanService, CustomerID: "cust-b", ContractID: "801", ServiceID: "700", Quantity: 2, Since: "2026-11-01", RunID: 5, Seq: 12},
	}}}
	if err := e.d.State().PutSnapshot(usage.SnapshotUnmapped, rep); err != nil {
		t.Fatal(err)
	}
	if err := e.d.RestoreMetrics(); err != nil {
		t.Fatal(err)
	}
	gauge := func(r string) float64 { return testutil.ToFloat64(e.d.metrics.Usage.OrphanedLines.WithLabelValues(r)) }
	if gauge(usage.OrphanCustomer) != 1 || gauge(usage.OrphanService) != 1 {
		t.Fatalf("restored psa_sync_orphaned_lines = customer %v, service %v; want 1 and 1", gauge(usage.OrphanCustomer), gauge(usage.OrphanService))
	}
	const target = "/api/v1/orphans/clear"
	if rec := dtServe(t, e.d, http.MethodPost, target, "", `{"all":true}`); rec.Code != http.StatusUnauthorized {
		t.Errorf("without the token: %d %s, want 401", rec.Code, rec.Body)
	}
	for _, c := range []struct {
		body string
		code int
		want string
	}{
		{`{}`, http.StatusBadRequest, "name one orphaned line"},
		{`{"contract_id":"800"}`, http.StatusBadRequest, "name both contract_id and service_id"},
		{`{"contract_id":"800","service_id":"700","all":true}`, http.StatusBadRequest, "name one orphaned line"},
		{`{"contract_id":"800","service_id":"701"}`, http.StatusNotFound, "no orphaned line of contract 800, service 701"},
		{`{"contract_id":"800","service_id":"700","note":"a\nb"}`, http.StatusBadRequest, "one line"},
		{`{"contract":"800"}`, http.StatusBadRequest, "unknown field"},
	} {
		if rec := dtServe(t, e.d, http.MethodPost, target, dtToken, c.body); rec.Code != c.code || !strings.Contains(rec.Body.String(), c.want) {
			t.Errorf("POST %s %s = %d %s; want %d saying %q", target, c.body, rec.Code, rec.Body, c.code, c.want)
		}
	}
	if gauge(usage.OrphanCustomer) != 1 || gauge(usage.OrphanService) != 1 {
		t.Errorf("after the refused requests psa_sync_orphaned_lines = customer %v, service %v; want 1 and 1", gauge(usage.OrphanCustomer), gauge(usage.OrphanService))
	}

	req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, target, strings.NewReader(`{"contract_id":"800","service_id":"700","note":"zeroed in Kaseya BMS"}`))
	req.SetBasicAuth("jane", dtToken)
	rec := httptest.NewRecorder()
	e.d.Handler().ServeHTTP(rec, req)
	var out struct {
		Cleared []usage.OrphanedLine `json:"cleared"`
	}
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &out) != nil || len(out.Cleared) != 1 || out.Cleared[0].CustomerID != "cust-a" {
		t.Fatalf("POST %s = %d %s; want 200 with cust-a's line", target, rec.Code, rec.Body)
	}
	if gauge(usage.OrphanCustomer) != 0 || gauge(usage.OrphanService) != 1 {
		t.Errorf("after the clear psa_sync_orphaned_lines = customer %v, service %v; want 0 and 1", gauge(usage.OrphanCustomer), gauge(usage.OrphanService))
	}
	if got := dtServe(t, e.d, http.MethodGet, "/api/v1/unmapped", "", "").Body.String(); strings.Contains(got, `"800"`) || !strings.Contains(got, `"801"`) {
		t.Errorf("GET /api/v1/unmapped after the clear = %s; want 801's line alone", got)
	}
	// The same request sent again (its answer lost): done already.
	if rec := dtServe(t, e.d, http.MethodPost, target, dtToken, `{"contract_id":"800","service_id":"700"}`); rec.Code != http.StatusOK ||
		!strings.Contains(rec.Body.String(), `"cleared": []`) || !strings.Contains(rec.Body.String(), "user jane: zeroed in Kaseya BMS") {
		t.Errorf("POST %s of the line cleared already = %d %s; want 200, none cleared, saying when and with which note", target, rec.Code, rec.Body)
	}
	// zeroed: the lines were set to 0 in the PSA.
	if rec := dtServe(t, e.d, http.MethodPost, target, dtToken, `{"all":true,"zeroed":true}`); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"801"`) {
		t.Errorf("POST %s all, zeroed = %d %s; want 200 with 801's line", target, rec.Code, rec.Body)
	}
	if gauge(usage.OrphanService) != 0 {
		t.Errorf("after clearing all psa_sync_orphaned_lines{reason=service} = %v, want 0", gauge(usage.OrphanService))
	}
	if rec := dtServe(t, e.d, http.MethodPost, target, dtToken, `{"all":true}`); rec.Code != http.StatusNotFound {
		t.Errorf("POST %s all with none listed = %d %s; want 404", target, rec.Code, rec.Body)
	}
}

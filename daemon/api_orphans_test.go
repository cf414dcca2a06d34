package daemon

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/psa-sync/terraform-provider-psa/daemon/state/pgtest"
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

// TestHandler_clearOrphansGivesUpOnAListThatKeepsChanging: each time the
// clear has read the unmapped list and goes to store it without the
// cleared line, a newer list is there (a pass of another instance stored
// it: here a trigger of the shared PostgreSQL database stores the list
// with one more unmapped product, a run later, in place of the clear's
// edit). After three reads the clear gives up: 500 saying the list changed
// each of the 3 times it was read, with the clear itself recorded (sent
// again, it is cleared already), and the newest list kept as that pass
// stored it (the line still shows there until the next pass).
func TestHandler_clearOrphansGivesUpOnAListThatKeepsChanging(t *testing.T) {
	t.Parallel()
	url, err := pgtest.New(t).CreateDatabase(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, time.December, 1, 8, 0, 0, 0, time.UTC)
	e := dtSetup(t, dtOptions{token: dtToken, daemonOpts: Options{Now: func() time.Time { return now }},
		state: fmt.Sprintf("state:\n  driver: postgres\n  url: %q\n", url)})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := e.d.BecomeActive(t.Context()); err != nil {
		t.Fatal(err)
	}
	rep := usage.UnmappedReport{Time: now, RunID: 7, Source: "sophos", Unmapped: usage.Unmapped{Orphaned: []usage.OrphanedLine{
		{Reason: usage.OrphanCustomer, CustomerID: "cust-a", ContractID: "800", ServiceID: "700", Quantity: 3, Since: "2026-11-01", RunID: 5, Seq: 11},
	}}}
	if err := e.d.State().PutSnapshot(usage.SnapshotUnmapped, rep); err != nil {
		t.Fatal(err)
	}
	if err := e.d.RestoreMetrics(); err != nil {
		t.Fatal(err)
	}
	dba, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer dba.Close()
	// Every write of the list is turned into the newer pass's: the list
	// read plus one unmapped product, a run later. (The trigger's own
	// write, one level down, goes through.)
	if _, err := dba.ExecContext(t.Context(), `CREATE FUNCTION newer_unmapped_list() RETURNS trigger LANGUAGE plpgsql AS $$
		DECLARE
			rep jsonb := OLD.value::jsonb;
			products jsonb := COALESCE(NULLIF(rep #> '{unmapped,products}', 'null'::jsonb), '[]'::jsonb);
		BEGIN
			IF pg_trigger_depth() > 1 THEN
				RETURN NEW;
			END IF;
			rep := jsonb_set(rep, '{run_id}', to_jsonb((rep->>'run_id')::bigint + 1));
			rep := jsonb_set(rep, '{unmapped,products}', products ||
				jsonb_build_object('product', 'NEWPROD-' || (jsonb_array_length(products) + 1), 'customers', 1, 'quantity', 4));
			UPDATE snapshots SET value = rep::text WHERE name = 'unmapped';
			RETURN NULL;
		END $$;
		CREATE TRIGGER newer_unmapped_list BEFORE UPDATE ON snapshots FOR EACH ROW WHEN (OLD.name = 'unmapped')
			EXECUTE FUNCTION newer_unmapped_list();`); err != nil {
		t.Fatal(err)
	}

	const target = "/api/v1/orphans/clear"
	rec := dtServe(t, e.d, http.MethodPost, target, dtToken, `{"contract_id":"800","service_id":"700","note":"zeroed in the PSA"}`)
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "changed each of the 3 times it was read") ||
		!strings.Contains(rec.Body.String(), "the orphaned lines are cleared, but the last pass's list still shows them until the next pass") {
		t.Errorf("POST %s while the list keeps changing = %d %s; want 500 saying the clear is recorded and the list changed 3 times", target, rec.Code, rec.Body)
	}
	var stored usage.UnmappedReport
	if _, err := e.d.State().Snapshot(usage.SnapshotUnmapped, &stored); err != nil {
		t.Fatal(err)
	}
	var products []string
	for _, p := range stored.Unmapped.Products {
		products = append(products, p.Product)
	}
	if stored.RunID != 10 || len(products) != 3 || products[2] != "NEWPROD-3" || len(stored.Unmapped.Orphaned) != 1 {
		t.Errorf("stored list: run %d, products %q, orphaned %+v; want the third newer list (run 10, NEWPROD-1 to -3) with the line, as stored",
			stored.RunID, products, stored.Unmapped.Orphaned)
	}
	if g := testutil.ToFloat64(e.d.metrics.Usage.OrphanedLines.WithLabelValues(usage.OrphanCustomer)); g != 1 {
		t.Errorf("psa_sync_orphaned_lines{reason=customer} = %v, want 1 until the next pass", g)
	}
	// The clear itself is recorded: the next pass does not list the line.
	var cleared []usage.ClearedOrphan
	if _, err := e.d.State().Snapshot("orphans_cleared", &cleared); err != nil {
		t.Fatal(err)
	}
	if len(cleared) != 1 || cleared[0].ContractID != "800" || cleared[0].ServiceID != "700" || cleared[0].Seq != 11 || cleared[0].Note != "zeroed in the PSA" {
		t.Errorf("cleared lines recorded = %+v; want 800/700 (seq 11) with its note", cleared)
	}
	// Once the list stays as read, the clear sent again takes the line off
	// the newest list.
	if _, err := dba.ExecContext(t.Context(), `DROP TRIGGER newer_unmapped_list ON snapshots`); err != nil {
		t.Fatal(err)
	}
	// Sent again without the note (psa-syncd orphans -clear retried by
	// hand): the earlier clear's note is kept.
	if rec := dtServe(t, e.d, http.MethodPost, target, dtToken, `{"contract_id":"800","service_id":"700"}`); rec.Code != http.StatusOK {
		t.Errorf("POST %s again = %d %s; want 200", target, rec.Code, rec.Body)
	}
	if got := dtServe(t, e.d, http.MethodGet, "/api/v1/unmapped", "", "").Body.String(); strings.Contains(got, `"800"`) || !strings.Contains(got, "NEWPROD-3") {
		t.Errorf("GET /api/v1/unmapped after the clear sent again = %s; want the newest list without 800's line", got)
	}
	cleared = nil
	if _, err := e.d.State().Snapshot("orphans_cleared", &cleared); err != nil {
		t.Fatal(err)
	}
	if len(cleared) != 1 || cleared[0].Seq != 11 || cleared[0].Note != "zeroed in the PSA" {
		t.Errorf("cleared lines after the clear sent again without a note = %+v; want 800/700 (seq 11) with the first clear's note", cleared)
	}
}

package daemon

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// TestDaemon_exportChangedWhileRead: a program that writes export_path in
// place (a copy by hand, a script), not through a file renamed over it,
// rewrote the export while psa-syncd's watch read it: Acme and Globex
// swap contracts, revision 2 to 3. The watch read revision 2 up to
// Globex's mapping and revision 3 from there: a document that never
// existed, with Globex on Acme's contract, which decoded and was loaded.
// Now the read fails, naming the file and the rename, the export loaded
// before stays in use (psa_sync_export_last_reload_successful 0), and the
// next poll reads revision 3 whole.
func TestDaemon_exportChangedWhileRead(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	acme, globex := dtID(e.contracts[0]), dtID(e.contracts[1])
	if len(acme) != len(globex) {
		t.Fatalf("contract ids %s and %s differ in length; the test needs two exports of one length", acme, globex)
	}
	withContracts := func(rev int64, a, g string) []byte {
		t.Helper()
		doc := e.doc.Clone()
		doc.Revision = rev
		for _, c := range []struct{ id, contract string }{{"cust-acme", a}, {"cust-globex", g}} {
			cm, _ := doc.Customer("file", c.id)
			cm.ContractID = c.contract
			doc.PutCustomer(cm)
		}
		data, err := doc.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	before, after := withContracts(2, acme, globex), withContracts(3, globex, acme)
	dtWrite(t, e.exportPath, string(before))
	// The watch reads up to Globex's mapping; then the writer rewrites the
	// file in place, as slowly as a person's copy.
	e.d.exportFirstRead = bytes.Index(before, []byte(`"customer_id": "cust-globex"`))
	e.d.exportReadHook = func() {
		if err := os.WriteFile(e.exportPath, after, 0o600); err != nil {
			t.Error(err)
		}
		later := time.Now().Add(time.Second)
		if err := os.Chtimes(e.exportPath, later, later); err != nil {
			t.Error(err)
		}
	}
	e.d.reloadMu.Lock()
	err := e.d.reloadExportLocked(false)
	e.d.exportReadHook = nil
	e.d.reloadMu.Unlock()
	if err == nil || !strings.Contains(err.Error(), "mapping export "+e.exportPath+": the file changed while it was read (") ||
		!strings.Contains(err.Error(), "renamed over mappings.json") {
		t.Errorf("reload while the export was written = %v, want it refused, naming the file and the rename", err)
	}
	contractOf := func(doc *export.Document, customer string) string {
		cm, _ := doc.Customer("file", customer)
		return cm.ContractID
	}
	if got := e.d.Export(); got.Revision != 1 || contractOf(got, "cust-globex") != globex {
		t.Errorf("export in use: revision %d, Globex on contract %s; want the one loaded before (1, contract %s)", got.Revision, contractOf(got, "cust-globex"), globex)
	}
	if got := testutil.ToFloat64(e.d.metrics.ExportLastReloadSuccessful); got != 0 {
		t.Errorf("psa_sync_export_last_reload_successful = %v, want 0", got)
	}

	if !e.d.exportChanged() {
		t.Fatal("exportChanged is false after a read that found the export changing")
	}
	e.d.reloadMu.Lock()
	err = e.d.reloadExportLocked(false)
	e.d.reloadMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if got := e.d.Export(); got.Revision != 3 || contractOf(got, "cust-acme") != globex || contractOf(got, "cust-globex") != acme {
		t.Errorf("export after the next poll: revision %d, want 3 with the contracts swapped", got.Revision)
	}
	if got := testutil.ToFloat64(e.d.metrics.ExportLastReloadSuccessful); got != 1 {
		t.Errorf("psa_sync_export_last_reload_successful after the next poll = %v, want 1", got)
	}
}

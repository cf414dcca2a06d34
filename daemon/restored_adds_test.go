package daemon

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// TestDaemon_connectWiseRestoredBackupAddsNoAdditionTwice: a ConnectWise
// PSA pass reads the quantities from the agreements, so a restored state
// database does not hold its writes as a Kaseya BMS pass's are. But an
// addition psa-syncd created after the backup was taken is in neither the
// restored ledger nor its intents, and when the read does not show it (an
// API member's security role that cannot see the agreement's additions, a
// cache), the pass created it again: a second addition bills the product
// twice. Until the operator confirms the restore (-state.allow-restore),
// a pass creates no addition: that line fails with the refusal, while the
// PATCHes of additions the read shows (absolute, cannot double) go on.
// (audit-doubles4, not fixed 4.)
func TestDaemon_connectWiseRestoredBackupAddsNoAdditionTwice(t *testing.T) {
	t.Parallel()
	sim := psatest.Start(t, psatest.WithSystem(psa.SystemConnectWise))
	cw := sim.ConnectWise()
	product := cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Description: "Sophos Intercept X Advanced", Price: 4.5})
	acme, globex := cw.AddCompany("Acme"), cw.AddCompany("Globex")
	agreements := [2]int64{
		cw.AddAgreement(psatest.ConnectWiseAgreement{CompanyID: acme, Name: "Acme Managed Services"}),
		cw.AddAgreement(psatest.ConnectWiseAgreement{CompanyID: globex, Name: "Globex Managed Services"}),
	}
	dir := t.TempDir()
	doc := export.New(psa.SystemConnectWise, strings.TrimPrefix(sim.URL(), "http://"))
	doc.Revision = 1
	doc.PutProduct(export.ProductMapping{Source: "file", Product: "CIXA-MSP", ServiceID: fmt.Sprint(product), SyncEnabled: true})
	for i, c := range []struct {
		id      string
		company int64
	}{{"cust-acme", acme}, {"cust-globex", globex}} {
		doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: c.id, CompanyID: fmt.Sprint(c.company), ContractID: fmt.Sprint(agreements[i]), UsageSync: true})
	}
	data, err := doc.Encode()
	if err != nil {
		t.Fatal(err)
	}
	dtWrite(t, dir+"/mappings.json", string(data))
	company, public, private, client := cw.Credentials()
	dtWrite(t, dir+"/psa-syncd.yml", fmt.Sprintf("export_path: mappings.json\nstate_dir: state\npsa:\n  system: connectwise\n  connectwise:\n"+
		"    base_url: %q\n    company_id: %q\n    public_key: %q\n    private_key: %q\n    client_id: %q\nsource:\n  type: file\n  file:\n    path: usage.csv\n"+
		"policies:\n  max_increase_percent: 0\n", sim.ConnectWiseBaseURL(), company, public, private, client))
	usageRows := func(acme, globex int) {
		dtWrite(t, dir+"/usage.csv", fmt.Sprintf("customer_id,product,quantity\ncust-acme,CIXA-MSP,%d\ncust-globex,CIXA-MSP,%d\n", acme, globex))
	}
	open := func(allowRestore bool) *Daemon {
		cfg, err := Load(dir+"/psa-syncd.yml", nil)
		if err != nil {
			t.Fatal(err)
		}
		d, err := New(cfg, dir+"/psa-syncd.yml", Options{AllowRestore: allowRestore})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Reload(); err != nil {
			t.Fatal(err)
		}
		return d
	}

	// The nightly backup is taken; then the pass adds both customers'
	// additions.
	d := open(false)
	backup := filepath.Join(dir, "backup.db")
	if err := d.db.Backup(backup); err != nil {
		t.Fatal(err)
	}
	usageRows(25, 5)
	if _, err := d.SyncOnce(t.Context(), usage.PassOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	// The disk is lost and the backup restored; the read of Acme's
	// agreement answers without its additions.
	restoreSQLiteBackup(t, filepath.Join(dir, "state", "psa-syncd.db"), backup)
	cw.HideAdditions(agreements[0], true)
	usageRows(25, 7)
	d = open(false)
	res, err := d.SyncOnce(t.Context(), usage.PassOptions{})
	if err != nil {
		t.Fatalf("SyncOnce on the restored backup = %v; want the pass run, with only the addition held", err)
	}
	if adds := cw.Additions(agreements[0]); len(adds) != 1 {
		t.Errorf("Acme's additions after the pass on the restored backup = %+v, want the one: a second one bills it twice", adds)
	}
	if q, _ := cw.Quantity(agreements[1], product); q != 7 {
		t.Errorf("Globex's quantity = %v, want 7: a PATCH cannot double and is not held", q)
	}
	if res.Run.Updated != 1 || res.Run.Failed != 1 {
		t.Errorf("run = %+v, want Globex updated and Acme's addition failed", res.Run)
	}
	cs, ok, err := d.db.CustomerStatus("file", "cust-acme")
	if err != nil || !ok || !strings.Contains(cs.Error, "restored") || !strings.Contains(cs.Error, "-state.allow-restore") {
		t.Errorf("Acme's status = %+v, %v, %v; want the refusal, naming -state.allow-restore", cs, ok, err)
	}
	if p, err := d.Plan(t.Context(), usage.PassOptions{}); err != nil || p.WritesHeld != "" {
		t.Errorf("Plan = %+v, %v; want computed, with the pass's writes not held as a whole", p, err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	// The operator checks the agreements and confirms the restore, once.
	d = open(true)
	defer d.Close()
	if _, marked, err := d.db.RestoredBackup(); marked || err != nil {
		t.Errorf("after -state.allow-restore: marked = %v, %v; want the mark removed", marked, err)
	}
}

package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// systemdStoppedConfig writes the shipped systemd psa-syncd.yml with its
// state_dir moved to a new state database, which fill writes to, and
// returns its path: the configuration as an operator has it by hand while
// the service is stopped, its credentials under /run/credentials/ gone.
func systemdStoppedConfig(t *testing.T, fill func(*state.DB)) string {
	t.Helper()
	cfg, err := os.ReadFile(filepath.Join(deployDir, "systemd", "psa-syncd.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cfg), "_file: /run/credentials/psa-syncd.service/") {
		t.Fatal("the systemd configuration reads no credential: this test checks nothing")
	}
	stateDir := t.TempDir()
	newStateDB(t, stateDir, fill)
	path := filepath.Join(t.TempDir(), "psa-syncd.yml")
	moved := strings.Replace(string(cfg), "\nstate_dir: /var/lib/psa-syncd\n", "\nstate_dir: "+stateDir+"\n", 1)
	if moved == string(cfg) {
		t.Fatal("the systemd configuration has no state_dir: /var/lib/psa-syncd line to move")
	}
	writeFile(t, path, moved)
	return path
}

// TestOrphans_systemdStoppedByHand: with the systemd example stopped, the
// orphaned lines are listed by hand from the state database: the list
// needs no secret but the state's. It used to fail on the first
// credential the configuration names (psa.autotask.secret_file).
func TestOrphans_systemdStoppedByHand(t *testing.T) {
	t.Parallel()
	path := systemdStoppedConfig(t, func(db *state.DB) {
		var rep usage.UnmappedReport
		rep.Unmapped.Orphaned = []usage.OrphanedLine{{Reason: usage.OrphanService, CustomerID: "cust-acme",
			ContractID: "contract-9", ServiceID: "service-17", Quantity: 12, Since: "2026-11-01", RunID: 1, Seq: 1}}
		if err := db.PutSnapshot(usage.SnapshotUnmapped, rep); err != nil {
			t.Fatal(err)
		}
	})
	code, stdout, stderr := runCmd(t, "orphans", "-config.file", path)
	if code != 0 || !strings.Contains(stdout, "contract-9") || !strings.Contains(stdout, "service-17") {
		t.Errorf("orphans with the systemd configuration, stopped: exit %d, stdout %q, stderr %q; want 0 and the line", code, stdout, stderr)
	}
	code, stdout, stderr = runCmd(t, "orphans", "-config.file", path, "-json")
	if code != 0 || !strings.Contains(stdout, `"service_id": "service-17"`) {
		t.Errorf("orphans -json with the systemd configuration, stopped: exit %d, stdout %q, stderr %q; want 0 and the line", code, stdout, stderr)
	}
}

// TestStatus_systemdStoppedByHand: with the systemd example stopped, status
// by hand reads the state database and the export it holds (export_url:
// self), no other secret: the export's customers are listed (one not
// synced yet as never, one it no longer maps as removed), and -exit-code
// still reads a failed one. It used to fail on the first credential the
// configuration names (psa.autotask.secret_file).
func TestStatus_systemdStoppedByHand(t *testing.T) {
	t.Parallel()
	path := systemdStoppedConfig(t, func(db *state.DB) {
		doc := export.New(psa.SystemAutotask, "webservices5.autotask.net")
		doc.Revision = 1
		doc.PutCustomer(export.CustomerMapping{Source: "sophos", CustomerID: "cust-acme", CustomerName: "Acme", CompanyID: "1", ContractID: "11", UsageSync: true})
		doc.PutCustomer(export.CustomerMapping{Source: "sophos", CustomerID: "cust-globex", CustomerName: "Globex", CompanyID: "2", ContractID: "12", UsageSync: true})
		data, err := doc.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if err := db.PutExport(state.ExportVersion{Revision: 1, Digest: "sha256:x"}, data); err != nil {
			t.Fatal(err)
		}
		for _, cs := range []state.CustomerStatus{
			{Source: "sophos", CustomerID: "cust-acme", CustomerName: "Acme", ContractID: "11", UsageSync: true, Result: "failed", Error: "psa: refused"},
			{Source: "sophos", CustomerID: "cust-initech", CustomerName: "Initech", ContractID: "13", UsageSync: true, Result: "succeeded"},
		} {
			if err := db.PutCustomerStatus(cs); err != nil {
				t.Fatal(err)
			}
		}
	})
	code, stdout, stderr := runCmd(t, "status", "-config.file", path, "-exit-code")
	if code != 1 {
		t.Errorf("status -exit-code with the systemd configuration, stopped: exit %d, stderr %q; want 1 (cust-acme failed)", code, stderr)
	}
	for _, want := range []string{`cust-acme\s.*\strue\s+failed\s`, `cust-globex\s.*\strue\s+never\s`, `cust-initech\s.*\sremoved\s`} {
		if !regexp.MustCompile(want).MatchString(stdout) {
			t.Errorf("status with the systemd configuration, stopped: no line matching %s in\n%s\nstderr %q", want, stdout, stderr)
		}
	}
}

// TestOrphans_byHandUnreadableList: a list the state database holds but
// that cannot be read fails the command, never "No orphaned line.".
func TestOrphans_byHandUnreadableList(t *testing.T) {
	t.Parallel()
	path := systemdStoppedConfig(t, func(db *state.DB) {
		if err := db.PutSnapshot(usage.SnapshotUnmapped, "not a report"); err != nil {
			t.Fatal(err)
		}
	})
	code, stdout, stderr := runCmd(t, "orphans", "-config.file", path)
	if code != 1 || strings.Contains(stdout, "No orphaned line") {
		t.Errorf("orphans with an unreadable list: exit %d, stdout %q, stderr %q; want 1 and the error", code, stdout, stderr)
	}
}

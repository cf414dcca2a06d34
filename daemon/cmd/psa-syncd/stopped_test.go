package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/state/pgtest"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
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

// TestResolve_systemdStoppedByHand: with the systemd example stopped, an
// open intent is resolved by hand: the answer is recorded in the state
// database, which needs no secret but the state's. It used to fail on the
// first credential the configuration names (psa.autotask.secret_file).
func TestResolve_systemdStoppedByHand(t *testing.T) {
	t.Parallel()
	var id int64
	var stateDir string
	path := systemdStoppedConfig(t, func(db *state.DB) {
		in, err := db.OpenIntent(state.Intent{RunID: 1, System: psa.SystemAutotask, Source: "sophos", CustomerID: "cust-acme", ContractID: "11",
			ServiceID: "service-17", Before: 3, After: 7, BeforeKnown: true, EffectiveDate: time.Date(2026, time.November, 1, 0, 0, 0, 0, time.UTC)})
		if err != nil {
			t.Fatal(err)
		}
		id, stateDir = in.ID, db.Path()
	})
	code, stdout, stderr := runCmd(t, "resolve", "-config.file", path, "-intent", strconv.FormatInt(id, 10), "-posted", "-note", "jane: line in the PSA")
	if code != 0 || !strings.Contains(stdout, fmt.Sprintf("Intent %d resolved as posted", id)) {
		t.Fatalf("resolve with the systemd configuration, stopped: exit %d, stdout %q, stderr %q; want 0 and the intent resolved", code, stdout, stderr)
	}
	db, err := state.Open(filepath.Dir(stateDir))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if open, err := db.OpenIntents(); err != nil || len(open) != 0 {
		t.Errorf("open intents after resolve = %v, %v; want none", open, err)
	}
}

// TestResolve_byHandPostgresTakesTheLead: resolve by hand on a PostgreSQL
// state database records its answer only as the active instance: while a
// psa-syncd holds the leadership lock it is refused, naming that one, and
// the intent stays open; once the lock is free it is recorded.
func TestResolve_byHandPostgresTakesTheLead(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	db, err := state.OpenConfig(t.Context(), state.Config{Driver: state.DriverPostgres, URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l, err := db.TryLead(t.Context(), state.LeaderInfo{Holder: "active.example"}, time.Second)
	if err != nil || l == nil {
		t.Fatalf("TryLead = %v, %v", l, err)
	}
	in, err := db.OpenIntent(state.Intent{RunID: 1, System: psa.SystemKaseyaBMS, Source: "file", CustomerID: "cust-pg", ContractID: "29684000",
		ServiceID: "30000001", Before: 3, After: 7, BeforeKnown: true, EffectiveDate: time.Date(2026, time.November, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	cfg := backupConfig(t, fmt.Sprintf("state_dir: %s\nstate:\n  driver: postgres\n  url: %q", t.TempDir(), url))
	args := []string{"resolve", "-config.file", cfg, "-intent", strconv.FormatInt(in.ID, 10), "-posted"}
	code, stdout, stderr := runCmd(t, args...)
	if code != 1 || !strings.Contains(stderr, "standby") || !strings.Contains(stderr, "active.example") {
		t.Errorf("resolve by hand while another psa-syncd leads: exit %d, stdout %q, stderr %q; want 1 naming the active instance", code, stdout, stderr)
	}
	if open, err := db.OpenIntents(); err != nil || len(open) != 1 {
		t.Fatalf("open intents after a refused resolve = %v, %v; want the intent still open", open, err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = runCmd(t, args...)
	if code != 0 || !strings.Contains(stdout, "resolved as posted") {
		t.Errorf("resolve by hand with the lock free: exit %d, stdout %q, stderr %q; want 0", code, stdout, stderr)
	}
	if open, err := db.OpenIntents(); err != nil || len(open) != 0 {
		t.Errorf("open intents after resolve = %v, %v; want none", open, err)
	}
}

// TestSetByHand_systemdStoppedByHand: with the systemd example stopped,
// the month that has ended (in the configuration's timezone) is recorded as
// set by hand in the state database, which needs no secret but the
// state's. It used to fail on the first credential the configuration names
// (psa.autotask.secret_file). It uses the clock, as TestRun_setByHand does.
func TestSetByHand_systemdStoppedByHand(t *testing.T) {
	t.Parallel()
	rome, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ended := source.PeriodOf(now.In(rome)).Prev().String()
	path := systemdStoppedConfig(t, func(db *state.DB) {
		if _, err := db.BeginRun(state.Run{Trigger: usage.TriggerSchedule, Period: ended, Started: now.Add(-time.Minute), Finished: now.Add(-time.Minute),
			Result: state.RunPartial}); err != nil {
			t.Fatal(err)
		}
	})
	if data, err := os.ReadFile(path); err != nil || !strings.Contains(string(data), "\ntimezone: Europe/Rome\n") {
		t.Fatal("the systemd configuration's timezone is not Europe/Rome: this test takes the wrong month")
	}
	code, stdout, stderr := runCmd(t, "set-by-hand", "-config.file", path, "-period", ended, "-note", "jane: quantities set in Autotask")
	if code != 0 || !strings.Contains(stdout, "records the quantities of "+ended+" as set by hand: jane: quantities set in Autotask") {
		t.Errorf("set-by-hand with the systemd configuration, stopped: exit %d, stdout %q, stderr %q; want 0 and the record", code, stdout, stderr)
	}
}

// TestOrphansClear_systemdStoppedByHand: with the systemd example stopped,
// an orphaned line zeroed in the PSA is cleared by hand in the state
// database, which needs no secret but the state's: it leaves the list. It
// used to fail on the first credential the configuration names
// (psa.autotask.secret_file).
func TestOrphansClear_systemdStoppedByHand(t *testing.T) {
	t.Parallel()
	path := systemdStoppedConfig(t, func(db *state.DB) {
		var rep usage.UnmappedReport
		rep.Source = "sophos"
		rep.Unmapped.Orphaned = []usage.OrphanedLine{{Reason: usage.OrphanService, CustomerID: "cust-acme",
			ContractID: "contract-9", ServiceID: "service-17", Quantity: 12, Since: "2026-11-01", RunID: 1, Seq: 1}}
		if err := db.PutSnapshot(usage.SnapshotUnmapped, rep); err != nil {
			t.Fatal(err)
		}
	})
	code, stdout, stderr := runCmd(t, "orphans", "-config.file", path, "-clear", "-contract", "contract-9", "-service", "service-17", "-note", "jane: zeroed in Autotask")
	if code != 0 || !strings.Contains(stdout, "Cleared 1 orphaned line(s)") || !strings.Contains(stdout, "service-17") {
		t.Fatalf("orphans -clear with the systemd configuration, stopped: exit %d, stdout %q, stderr %q; want 0 and the line cleared", code, stdout, stderr)
	}
	code, stdout, stderr = runCmd(t, "orphans", "-config.file", path)
	if code != 0 || !strings.Contains(stdout, "No orphaned line.") {
		t.Errorf("orphans after the clear: exit %d, stdout %q, stderr %q; want no line listed", code, stdout, stderr)
	}
	code, stdout, stderr = runCmd(t, "orphans", "-config.file", path, "-clear", "-contract", "contract-9", "-service", "service-17")
	if code != 0 || !strings.Contains(stdout, "Nothing to do") || !strings.Contains(stdout, "jane: zeroed in Autotask") {
		t.Errorf("orphans -clear sent again: exit %d, stdout %q, stderr %q; want 0, cleared already with the first clear's note", code, stdout, stderr)
	}
}

// TestRebind_systemdStoppedWithThePSACredentials: with the systemd example
// stopped, rebind by hand reads the state and PSA settings only: given the
// Autotask credentials (their source files, say), it binds the state
// database to the tenant it connects to, though the Sophos secret and the
// API token stay systemd credentials it cannot read. It used to fail on
// the first of them (source.sophos.client_secret_file).
func TestRebind_systemdStoppedWithThePSACredentials(t *testing.T) {
	t.Parallel()
	sim := psatest.Start(t)
	user, secret, code := sim.Autotask().Credentials()
	var stateFile string
	path := systemdStoppedConfig(t, func(db *state.DB) {
		if err := db.PutBoundInstance(state.PSAInstance{System: psa.SystemAutotask, Instance: "webservices2.autotask.net", BoundAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		stateFile = db.Path()
	})
	creds := t.TempDir()
	writeFile(t, filepath.Join(creds, "autotask-secret"), secret)
	writeFile(t, filepath.Join(creds, "autotask-integration-code"), code)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(data)
	for _, r := range [][2]string{
		{"    username: api-psa-sync@msp.example\n", "    username: " + user + "\n    base_url: " + sim.AutotaskBaseURL() + "\n"},
		{"/run/credentials/psa-syncd.service/autotask-secret", filepath.Join(creds, "autotask-secret")},
		{"/run/credentials/psa-syncd.service/autotask-integration-code", filepath.Join(creds, "autotask-integration-code")},
	} {
		if !strings.Contains(cfg, r[0]) {
			t.Fatalf("the systemd configuration has no %q to replace", r[0])
		}
		cfg = strings.Replace(cfg, r[0], r[1], 1)
	}
	if !strings.Contains(cfg, "client_secret_file: /run/credentials/psa-syncd.service/sophos-client-secret") {
		t.Fatal("the systemd configuration reads the Sophos secret from no credential: this test checks nothing")
	}
	writeFile(t, path, cfg)
	code2, stdout, stderr := runCmd(t, "rebind", "-config.file", path)
	host := strings.TrimPrefix(sim.URL(), "http://")
	if code2 != 0 || !strings.Contains(stdout, `now holds the usage of autotask instance "`+host+`" (was "webservices2.autotask.net"`) {
		t.Fatalf("rebind with the systemd configuration, stopped, the PSA credentials given: exit %d, stdout %q, stderr %q; want 0 and the new instance", code2, stdout, stderr)
	}
	db, err := state.Open(filepath.Dir(stateFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if in, ok, err := db.BoundInstance(psa.SystemAutotask); err != nil || !ok || in.Instance != host {
		t.Errorf("bound instance after rebind = %+v, %v, %v; want %s", in, ok, err, host)
	}
}

// TestStatus_byHandExportOfAnotherInstance: status by hand compares the
// export's psa.instance with the instance the state database is bound to,
// which a pass connects to: an export of another tenant is refused, as a
// pass refuses it (logged; the stored statuses show, not the export's
// customers), and one of the bound tenant is used. Without the comparison
// the other tenant's customers showed as this one's.
func TestStatus_byHandExportOfAnotherInstance(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, exportInstance string
		refused              bool
	}{
		{"another tenant", "ci:111@webservices2.autotask.net", true},
		{"the bound tenant", "ci:29683541@webservices5.autotask.net", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := systemdStoppedConfig(t, func(db *state.DB) {
				if err := db.PutBoundInstance(state.PSAInstance{System: psa.SystemAutotask, Instance: "ci:29683541@webservices5.autotask.net", BoundAt: time.Now()}); err != nil {
					t.Fatal(err)
				}
				doc := export.New(psa.SystemAutotask, tt.exportInstance)
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
				if err := db.PutCustomerStatus(state.CustomerStatus{Source: "sophos", CustomerID: "cust-acme", CustomerName: "Acme", ContractID: "11", UsageSync: true,
					Result: "failed", Error: "psa: refused"}); err != nil {
					t.Fatal(err)
				}
			})
			code, stdout, stderr := runCmd(t, "status", "-config.file", path)
			if code != 0 || !regexp.MustCompile(`cust-acme\s.*\sfailed\s`).MatchString(stdout) {
				t.Fatalf("status by hand: exit %d, stdout %q, stderr %q; want 0 and cust-acme failed", code, stdout, stderr)
			}
			refused := strings.Contains(stderr, "psa.instance: the export is for autotask instance")
			globex := strings.Contains(stdout, "cust-globex")
			if refused != tt.refused || globex == tt.refused {
				t.Errorf("status by hand, export of %s: refused %v, cust-globex listed %v; want refused %v\nstdout %s\nstderr %s",
					tt.exportInstance, refused, globex, tt.refused, stdout, stderr)
			}
		})
	}
}

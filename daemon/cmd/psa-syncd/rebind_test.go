package main

import (
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// Pointed at another tenant with the state directory of the first, sync
// and plan are refused with an error that names both instances and the
// ways out, and write nothing; after psa-syncd rebind they run, taking the
// ledger as the new instance's (a line it says was set and the tenant does
// not show is held until approved), and the ticket records of the instance
// bound before are the new instance's (those of a third are left as they
// are).
func TestRun_rebindAfterAnotherInstance(t *testing.T) {
	t.Parallel()
	sandbox := newTestEnv(t, nil)
	if code, stdout, stderr := runCmd(t, "sync", "-config.file="+sandbox.cfgPath); code != 0 {
		t.Fatalf("sandbox sync: exit %d\n%s\n%s", code, stdout, stderr)
	}
	sandboxHost := strings.TrimPrefix(sandbox.sim.URL(), "http://")

	// Production: another simulator with the same ids, and the sandbox's
	// state directory.
	prod := newTestEnv(t, nil)
	cfg, err := os.ReadFile(prod.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, prod.cfgPath, strings.Replace(string(cfg), "state_dir: state\n", "state_dir: "+filepath.Join(sandbox.dir, "state")+"\n", 1))
	prodHost := strings.TrimPrefix(prod.sim.URL(), "http://")
	flag := "-config.file=" + prod.cfgPath

	for _, cmd := range [][]string{{"sync"}, {"sync", "-dry-run"}, {"plan"}} {
		code, stdout, stderr := runCmd(t, append(cmd, flag)...)
		for _, want := range []string{
			"the state database holds the usage of autotask instance", sandboxHost,
			"but psa-syncd is connected to autotask instance", prodHost, "psa-syncd rebind",
		} {
			if code != 1 || !strings.Contains(stdout+stderr, want) {
				t.Errorf("%s: exit %d, want 1 and %q in the output:\n%s\n%s", strings.Join(cmd, " "), code, want, stdout, stderr)
			}
		}
	}
	// The refused pass is recorded as a failed run.
	metrics := filepath.Join(prod.dir, "metrics.prom")
	if code, _, _ := runCmd(t, "sync", flag, "-metrics.file", metrics); code != 1 {
		t.Errorf("sync -metrics.file: exit %d, want 1", code)
	}
	if prom, err := os.ReadFile(metrics); err != nil || !strings.Contains(string(prom), `psa_sync_runs_total{result="failure",system="autotask"} 1`) {
		t.Errorf("metrics file of the refused pass: %v\n%s", err, prom)
	}
	if n := len(prod.sim.Autotask().Adjustments()); n != 0 {
		t.Fatalf("the refused passes posted %d adjustments", n)
	}

	stateDir := filepath.Join(sandbox.dir, "state")
	db, err := state.Open(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []tickets.Record{
		{AlertKey: "sandbox-alert", Instance: strings.ToUpper(sandboxHost), TicketID: "7001"},
		{AlertKey: "third-alert", Instance: "ci:111@webservices2.autotask.net", TicketID: "7002"},
	} {
		r.Source, r.CustomerID, r.Ref, r.System, r.State = "sophos", "c1", "sc:"+r.AlertKey, string(psa.SystemAutotask), tickets.StateOpen
		if err := db.PutTicketRecord(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	code, stdout, stderr := runCmd(t, "rebind", flag)
	want := `The state database now holds the usage of autotask instance "` + prodHost + `" (was "` + sandboxHost + `"`
	if code != 0 || !strings.Contains(stdout, want) || !strings.Contains(stderr, "Took the ticket records") {
		t.Fatalf("rebind: exit %d, want %q and the ticket records taken:\n%s\n%s", code, want, stdout, stderr)
	}
	if db, err = state.Open(stateDir); err != nil {
		t.Fatal(err)
	}
	records, err := db.TicketRecords("sophos", "c1")
	if err != nil || len(records) != 2 || records[0].Instance != prodHost || records[1].Instance != "ci:111@webservices2.autotask.net" {
		t.Errorf("ticket records after rebind = %+v, %v; want the sandbox's recorded as %s's, the third instance's as they were", records, err, prodHost)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// After rebind the sandbox's ledger is taken as this instance's: the
	// lines it says psa-syncd set are not on the new tenant's contracts, so
	// each is held (line_missing) rather than added a second time, and only
	// an approval of that line adds it.
	code, stdout, stderr = runCmd(t, "sync", flag)
	if code != 0 || !strings.Contains(stdout+stderr, "shows no line of this service on the contract") {
		t.Fatalf("sync after rebind: exit %d, want 0 and the lines held as missing\n%s\n%s", code, stdout, stderr)
	}
	if n := len(prod.sim.Autotask().Adjustments()); n != 0 {
		t.Fatalf("the pass after rebind posted %d adjustments, want the lines the ledger knows held", n)
	}
	customers := []string{"cust-acme", "cust-globex"}
	for _, w := range wantUnits {
		if code, stdout, stderr := runCmd(t, "sync", flag, "-approve", "-customer", customers[w[0]], "-service", itoa(prod.services[w[1]]), "-units", itoa(w[2])); code != 0 {
			t.Fatalf("sync -approve of %s service %d: exit %d\n%s\n%s", customers[w[0]], prod.services[w[1]], code, stdout, stderr)
		}
	}
	prod.checkUnits(t)
}

// TestRun_checkStateOfAnotherInstance: check reports a state database that
// holds the usage of another PSA instance as a failure, in the words of
// the pass it refuses (naming both instances and psa-syncd rebind), and
// the one of the instance it connects to as ok; it changes nothing in the
// database, creates none where there is none yet, and skips the check,
// with a note, for a schema that records no instance yet.
func TestRun_checkStateOfAnotherInstance(t *testing.T) {
	t.Parallel()
	sandbox := newTestEnv(t, nil)
	sandboxFlag := "-config.file=" + sandbox.cfgPath
	sandboxHost := strings.TrimPrefix(sandbox.sim.URL(), "http://")
	stateDir := filepath.Join(sandbox.dir, "state")
	flat := func(s string) string { return strings.Join(strings.Fields(s), " ") }

	code, stdout, stderr := runCmd(t, "check", sandboxFlag)
	if want := "ok state database: none yet: the first pass creates it and records autotask instance"; code != 0 || !strings.Contains(flat(stdout), want) {
		t.Errorf("check before the first pass: exit %d, want 0 and %q:\n%s\n%s", code, want, stdout, stderr)
	}
	if _, err := os.Stat(stateDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("check created the state directory (%v)", err)
	}
	if code, stdout, stderr := runCmd(t, "sync", sandboxFlag); code != 0 {
		t.Fatalf("sandbox sync: exit %d\n%s\n%s", code, stdout, stderr)
	}
	code, stdout, stderr = runCmd(t, "check", sandboxFlag)
	if want := `ok state database: holds the usage of autotask instance "` + sandboxHost + `"`; code != 0 || !strings.Contains(flat(stdout), want) {
		t.Errorf("check of the sandbox: exit %d, want 0 and %q:\n%s\n%s", code, want, stdout, stderr)
	}

	// While another process holds the database (psa-syncd run), the check
	// is skipped with a note: that daemon's passes check the instance.
	held, err := state.Open(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = runCmd(t, "check", sandboxFlag)
	if want := "NOTE state database: - Not checked which PSA instance's usage it holds: state: state database"; code != 0 ||
		!strings.Contains(flat(stdout), want) || !strings.Contains(flat(stdout), "is locked by another psa-syncd process") {
		t.Errorf("check while another process holds the state database: exit %d, want 0 and %q:\n%s\n%s", code, want, stdout, stderr)
	}
	if err := held.Close(); err != nil {
		t.Fatal(err)
	}

	// Production: another simulator, and the sandbox's state directory.
	prod := newTestEnv(t, nil)
	cfg, err := os.ReadFile(prod.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, prod.cfgPath, strings.Replace(string(cfg), "state_dir: state\n", "state_dir: "+stateDir+"\n", 1))
	prodHost := strings.TrimPrefix(prod.sim.URL(), "http://")
	prodFlag := "-config.file=" + prod.cfgPath
	code, stdout, stderr = runCmd(t, "check", prodFlag)
	for _, want := range []string{
		`FAIL state database: the state database holds the usage of autotask instance "` + sandboxHost + `"`,
		`but psa-syncd is connected to autotask instance "` + prodHost + `"`, "psa-syncd rebind",
		"ok psa autotask", "ok mapping export",
	} {
		if code != 1 || !strings.Contains(flat(stdout), want) {
			t.Errorf("check of production with the sandbox's state: exit %d, want 1 and %q:\n%s\n%s", code, want, stdout, stderr)
		}
	}
	// The check bound nothing: the database still holds the sandbox's usage.
	if code, stdout, _ := runCmd(t, "check", sandboxFlag); code != 0 || !strings.Contains(stdout, "ok   state database: holds the usage of") {
		t.Errorf("check of the sandbox after production's: exit %d\n%s", code, stdout)
	}

	// A database of schema version 6 records no instance: the check is
	// skipped with a note, and the schema is left as it is.
	file := filepath.Join(stateDir, state.FileName)
	exec := func(q string) {
		t.Helper()
		raw, err := sql.Open("sqlite", file)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = raw.Close() }()
		if _, err := raw.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	exec(`ALTER TABLE tickets DROP COLUMN held_since; ALTER TABLE tickets DROP COLUMN moved_note; ALTER TABLE tickets DROP COLUMN reopen_activity; ALTER TABLE tickets DROP COLUMN note_alerts; DROP INDEX ledger_customer; ALTER TABLE tickets DROP COLUMN missing_since; ALTER TABLE runs DROP COLUMN note; DROP TABLE psa_instance; DELETE FROM schema_migrations WHERE version >= 7`)
	code, stdout, stderr = runCmd(t, "check", prodFlag)
	if want := "NOTE state database: - Not checked which PSA instance's usage it holds: its schema (version 6) predates version 7, which records it"; code != 0 ||
		!strings.Contains(flat(stdout), want) || strings.Contains(stdout, "FAIL") {
		t.Errorf("check with a database of schema version 6: exit %d, want 0 and %q:\n%s\n%s", code, want, stdout, stderr)
	}
	db, err := state.OpenConfig(t.Context(), state.Config{Path: stateDir, Existing: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	if v, err := db.Version(); err != nil || v != 6 {
		t.Errorf("schema version after check = %d, %v; want 6, as it was", v, err)
	}
}

package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// TestRun_orphans: psa-syncd orphans lists the orphaned lines the last pass
// stored; -clear of one line (both -contract and -service) removes it from
// the list, and -clear -all the rest; a line not listed is refused, and
// flags that do not go together are usage errors.
func TestRun_orphans(t *testing.T) {
	t.Parallel()
	e := newSystemEnv(t, psa.SystemKaseyaBMS)
	cfg := "-config.file=" + e.cfgPath
	if code, _, stderr := runCmd(t, "sync", cfg, "-state.allow-empty"); code != 0 {
		t.Fatalf("sync: exit %d\n%s", code, stderr)
	}
	db, err := state.Open(filepath.Join(e.dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	var rep usage.UnmappedReport
	if _, err := db.Snapshot(usage.SnapshotUnmapped, &rep); err != nil {
		t.Fatal(err)
	}
	rep.Unmapped.Orphaned = []usage.OrphanedLine{
		{Reason: usage.OrphanCustomer, CustomerID: "cust-gone", ContractID: "800", ServiceID: "700", Quantity: 3, Since: "2026-11-01", RunID: 1, Seq: 1},
		{Reason: usage.OrphanService, CustomerID: "cust-b", CustomerName: "Globex", ContractID: "801", ServiceID: "700", Quantity: 2, Since: "2026-11-01", RunID: 1, Seq: 2},
	}
	if err := db.PutSnapshot(usage.SnapshotUnmapped, rep); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-all"}, "go with -clear"},
		{[]string{"-zeroed"}, "go with -clear"},
		{[]string{"-clear"}, "-clear needs -contract and -service of one line, or -all"},
		{[]string{"-clear", "-contract", "800"}, "needs both -contract and -service"},
		{[]string{"-clear", "-all", "-contract", "800", "-service", "700"}, "or -all"},
	} {
		if code, _, stderr := runCmd(t, append([]string{"orphans", cfg}, c.args...)...); code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("orphans %v: exit %d, stderr %s; want 2 saying %q", c.args, code, stderr, c.want)
		}
	}
	code, stdout, stderr := runCmd(t, "orphans", cfg)
	if code != 0 || !strings.Contains(stdout, "cust-gone") || !strings.Contains(stdout, "Globex (cust-b)") || !strings.Contains(stdout, "no customer mapping names the contract") {
		t.Fatalf("orphans: exit %d\n%s\n%s; want both lines", code, stdout, stderr)
	}
	if code, _, stderr := runCmd(t, "orphans", cfg, "-clear", "-contract", "800", "-service", "701"); code != 1 || !strings.Contains(stderr, "no orphaned line of contract 800, service 701") {
		t.Errorf("orphans -clear of a line not listed: exit %d, stderr %s; want 1 saying so", code, stderr)
	}
	code, stdout, stderr = runCmd(t, "orphans", cfg, "-clear", "-contract", "800", "-service", "700", "-note", "jane: contract ended in Kaseya BMS")
	if code != 0 || !strings.Contains(stdout, "Cleared 1 orphaned line") || !strings.Contains(stdout, "cust-gone") {
		t.Fatalf("orphans -clear: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if code, stdout, _ := runCmd(t, "orphans", cfg); code != 0 || strings.Contains(stdout, "cust-gone") || !strings.Contains(stdout, "cust-b") {
		t.Errorf("orphans after the clear: exit %d\n%s; want cust-b's line alone", code, stdout)
	}
	// The same clear again: done already.
	if code, stdout, stderr := runCmd(t, "orphans", cfg, "-clear", "-contract", "800", "-service", "700"); code != 0 ||
		!strings.Contains(stdout, "Nothing to do") || !strings.Contains(stdout, "jane: contract ended in Kaseya BMS") {
		t.Errorf("orphans -clear of the line cleared already: exit %d\n%s\n%s; want 0, nothing to do, with its note", code, stdout, stderr)
	}
	// -zeroed: the line was set to 0 in Kaseya BMS, which the state
	// database records with the clear (usage.DoubtedLine).
	if code, stdout, stderr := runCmd(t, "orphans", cfg, "-clear", "-all", "-zeroed"); code != 0 || !strings.Contains(stdout, "Cleared 1 orphaned line") {
		t.Errorf("orphans -clear -all -zeroed: exit %d\n%s\n%s", code, stdout, stderr)
	}
	db, err = state.Open(filepath.Join(e.dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	var doubted []usage.DoubtedLine
	if _, err := db.Snapshot("lines_doubted", &doubted); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	zeroed := map[string]bool{}
	for _, d := range doubted {
		zeroed[d.ContractID] = d.Zeroed
	}
	if z, ok := zeroed["800"]; len(doubted) != 2 || !ok || z || !zeroed["801"] {
		t.Errorf("lines recorded with the clears = %+v, want 800's (a plain clear) and 801's, zeroed", doubted)
	}
	if code, stdout, _ := runCmd(t, "orphans", cfg, "-json"); code != 0 || strings.TrimSpace(stdout) != "[]" {
		t.Errorf("orphans -json after clearing all: exit %d\n%s; want []", code, stdout)
	}
}

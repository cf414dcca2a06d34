package main

import (
	"context"
	"encoding/csv"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// TestRun_remoteLedgerPages: the daemon's API answers the ledger a page
// at a time; psa-syncd ledger -web.url still prints every change (or
// -limit of them), following the pages.
func TestRun_remoteLedgerPages(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	total := daemon.LedgerPageSize + daemon.LedgerPageSize/2
	db, err := state.Open(filepath.Join(e.dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	ins := make([]state.Intent, total)
	for i := range ins {
		ins[i] = state.Intent{RunID: 1, System: psa.SystemAutotask, Source: "file", CustomerID: "cust-acme", ContractID: itoa(e.contracts[0]),
			ServiceID: itoa(e.services[0]), Before: int64(i), After: int64(i + 1), BeforeKnown: true,
			EffectiveDate: time.Date(2026, time.November, 1, 0, 0, 0, 0, time.UTC), Created: time.Now()}
	}
	opened, err := db.OpenIntentBatch(context.Background(), ins)
	if err != nil {
		t.Fatal(err)
	}
	cs := make([]state.IntentCompletion, len(opened))
	for i, in := range opened {
		cs[i] = state.IntentCompletion{ID: in.ID, State: state.IntentDone}
	}
	if err := db.CompleteIntentBatch(context.Background(), cs); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	web := "-web.url=" + startDaemon(t, e.cfgPath)

	for _, tc := range []struct {
		args []string
		want int
	}{
		{nil, total},
		{[]string{"-limit", "0"}, total},
		{[]string{"-limit", strconv.Itoa(daemon.LedgerPageSize + 10)}, daemon.LedgerPageSize + 10},
		{[]string{"-limit", "7"}, 7},
	} {
		code, stdout, stderr := runCmd(t, append([]string{"ledger", web, "-format", "csv"}, tc.args...)...)
		rows, err := csv.NewReader(strings.NewReader(stdout)).ReadAll()
		if code != 0 || err != nil || len(rows) != tc.want+1 {
			t.Errorf("ledger %v: exit %d, %v, %d rows (%s); want a header and %d changes", tc.args, code, err, len(rows), stderr, tc.want)
			continue
		}
		for i, row := range rows[1:] {
			if row[0] != strconv.Itoa(total-i) {
				t.Errorf("ledger %v: row %d has seq %s, want %d (newest first, each once)", tc.args, i+1, row[0], total-i)
				break
			}
		}
	}
}

// status, like ledger, reads the state database as it is: with a
// state_dir where none is (a typo, another user's path) it fails naming
// the file, instead of creating an empty database and saying that no
// customer was ever synced. So do resolve and rebind, which act on a
// database that holds an open intent or refused a pass.
func TestRun_statusWithoutStateDatabase(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	for _, args := range [][]string{{"status"}, {"ledger"}, {"resolve", "-intent", "1", "-posted"}, {"rebind"}} {
		code, stdout, stderr := runCmd(t, append(args, "-config.file", e.cfgPath)...)
		if code != 1 || stdout != "" || !strings.Contains(stderr, "is the state directory right?") {
			t.Errorf("%v without a state database: exit %d\nstdout: %s\nstderr: %s\nwant 1 and the missing database named", args, code, stdout, stderr)
		}
		if _, err := os.Stat(filepath.Join(e.dir, "state")); !os.IsNotExist(err) {
			t.Fatalf("state directory after %v: %v, want none created", args, err)
		}
	}
}

// ledger takes -json like status, plan, sync and tickets (a flag copied
// from them is no usage error): the same as -format json.
func TestRun_ledgerJSONFlag(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	if code, _, stderr := runCmd(t, "sync", "-config.file", e.cfgPath); code != 0 {
		t.Fatalf("sync: exit %d\n%s", code, stderr)
	}
	code, viaFormat, stderr := runCmd(t, "ledger", "-config.file", e.cfgPath, "-format", "json")
	if code != 0 || !strings.Contains(viaFormat, `"ledger": [`) {
		t.Fatalf("ledger -format json: exit %d\n%s\n%s", code, viaFormat, stderr)
	}
	if code, stdout, stderr := runCmd(t, "ledger", "-config.file", e.cfgPath, "-json"); code != 0 || stdout != viaFormat {
		t.Errorf("ledger -json: exit %d\n%s\n%s\nwant what -format json prints:\n%s", code, stdout, stderr, viaFormat)
	}
	if code, _, stderr := runCmd(t, "ledger", "-config.file", e.cfgPath, "-json", "-format", "csv"); code != 2 || !strings.Contains(stderr, "contradict") {
		t.Errorf("ledger -json -format csv: exit %d, stderr %q; want a usage error", code, stderr)
	}
}

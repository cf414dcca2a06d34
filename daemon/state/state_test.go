package state

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// closeDB closes db, failing the test if that fails.
func closeDB(t *testing.T, db *DB) {
	t.Helper()
	if err := db.Close(); err != nil {
		t.Errorf("Close returned error: %v", err)
	}
}

// openTest opens a fresh database in a temporary state directory.
func openTest(t *testing.T) *DB {
	t.Helper()
	db, err := Open(t.TempDir())
	if err != nil {
		t.Fatalf("Open returned error: %v", err)
	}
	t.Cleanup(func() { closeDB(t, db) })
	return db
}

var t0 = time.Date(2026, time.November, 21, 10, 0, 0, 0, time.UTC)

func TestOpen_createsDirectoryAndFile(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "var", "lib", "psa-syncd")
	db, err := Open(dir)
	if err != nil {
		t.Fatalf("Open returned error: %v", err)
	}
	defer closeDB(t, db)
	if want := filepath.Join(dir, FileName); db.Path() != want {
		t.Errorf("Path = %q, want %q", db.Path(), want)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o700 {
		t.Errorf("state directory mode = %o, want 700", perm)
	}
	fi, err = os.Stat(db.Path())
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		t.Errorf("database file mode = %o, want no group or other access", perm)
	}
}

func TestOpen_filePath(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "sub", "custom.db")
	db, err := Open(file)
	if err != nil {
		t.Fatalf("Open returned error: %v", err)
	}
	defer closeDB(t, db)
	if db.Path() != file {
		t.Errorf("Path = %q, want %q", db.Path(), file)
	}
}

func TestOpen_emptyPath(t *testing.T) {
	t.Parallel()
	if _, err := Open(""); err == nil {
		t.Fatal("Open(\"\") returned nil error")
	}
}

func TestOpen_lockedBySecondOpener(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db, err := Open(dir)
	if err != nil {
		t.Fatalf("Open returned error: %v", err)
	}
	defer closeDB(t, db)

	// flock locks belong to the open file description, so a second Open in
	// this process is refused exactly as one from another process is.
	start := time.Now()
	second, err := Open(dir)
	if err == nil {
		closeDB(t, second)
		t.Fatal("second Open returned nil error")
	}
	want := fmt.Sprintf("state: state database %q is locked by another psa-syncd process", filepath.Join(dir, FileName))
	if err.Error() != want {
		t.Errorf("second Open error = %q, want %q", err, want)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("second Open took %v, want about %v", d, lockTimeout)
	}

	// Once the first holder closes, the database opens again.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := Open(dir)
	if err != nil {
		t.Fatalf("Open after Close returned error: %v", err)
	}
	closeDB(t, again)
}

func TestOpen_corruptFileIsLeftUntouched(t *testing.T) {
	t.Parallel()

	// A real database to damage in different ways.
	src := t.TempDir()
	db, err := Open(src)
	if err != nil {
		t.Fatal(err)
	}
	for range 50 {
		if _, err := db.BeginRun(Run{Trigger: "schedule", Started: t0}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(filepath.Join(src, FileName))
	if err != nil {
		t.Fatal(err)
	}
	const meta = 2 * 4096 // bbolt's two meta pages at the default page size
	if len(good) <= meta {
		t.Fatalf("test database is only %d bytes", len(good))
	}

	for name, data := range map[string][]byte{
		"text":       []byte(strings.Repeat("this is not a bbolt database\n", 1000)),
		"short":      []byte("hello"),
		"truncated":  good[:4096],
		"zeroedMeta": append(make([]byte, meta), good[meta:]...),
		// bbolt panics on this one inside its Open.
		"zeroedData": append(append([]byte{}, good[:meta]...), make([]byte, len(good)-meta)...),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			file := filepath.Join(dir, FileName)
			if err := os.WriteFile(file, data, 0o600); err != nil {
				t.Fatal(err)
			}
			db, err := Open(dir)
			if err == nil {
				closeDB(t, db)
				t.Fatal("Open returned nil error for a corrupt file")
			}
			want := fmt.Sprintf("state: state database %q is corrupt or not a psa-syncd database (", file)
			if !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "left untouched") {
				t.Errorf("Open error = %q, want it to start with %q and say the file was left untouched", err, want)
			}
			got, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(data) {
				t.Error("Open modified the corrupt file")
			}
		})
	}
}

func TestOpen_newerSchemaRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keySchemaVersion, []byte(strconv.Itoa(SchemaVersion+1)))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	_, err = Open(dir)
	want := fmt.Sprintf("state: state database %q has schema version %d, but this psa-syncd supports up to %d: "+
		"upgrade psa-syncd or use another state directory", filepath.Join(dir, FileName), SchemaVersion+1, SchemaVersion)
	if err == nil || err.Error() != want {
		t.Errorf("Open error = %v, want %q", err, want)
	}
}

func TestOpen_reopenKeepsData(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	cs := CustomerStatus{Source: "sophos", CustomerID: "718b", Result: CustomerSucceeded, LastAttempt: t0}
	if err := db.PutCustomerStatus(cs); err != nil {
		t.Fatal(err)
	}
	r, err := db.BeginRun(Run{Trigger: "schedule", Started: t0})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = Open(dir)
	if err != nil {
		t.Fatalf("reopen returned error: %v", err)
	}
	defer closeDB(t, db)
	got, ok, err := db.CustomerStatus("sophos", "718b")
	if err != nil || !ok || !cmp.Equal(got, cs) {
		t.Errorf("CustomerStatus after reopen = %+v, %v, %v; want %+v", got, ok, err, cs)
	}
	r2, err := db.BeginRun(Run{Trigger: "manual", Started: t0})
	if err != nil {
		t.Fatal(err)
	}
	if r2.ID != r.ID+1 {
		t.Errorf("run id after reopen = %d, want %d", r2.ID, r.ID+1)
	}
}

func TestCustomerStatus_roundTripAndOrder(t *testing.T) {
	t.Parallel()
	db := openTest(t)

	in := []CustomerStatus{
		{Source: "sophos", CustomerID: "b", CustomerName: "Beta", CompanyID: "174", ContractID: "29684183",
			UsageSync: true, TicketSync: true, LastAttempt: t0, LastSuccess: t0.Add(-time.Hour),
			Result: CustomerFailed, Error: "autotask: 403", Hint: "check the API user's security level",
			RunID: "7", Updated: 1, Unchanged: 2, Held: 3, Failed: 4},
		{Source: "sophos", CustomerID: "a", Result: CustomerSucceeded, LastAttempt: t0},
		{Source: "file", CustomerID: "z", Result: CustomerSkipped},
		// "sophos" must sort before "sophos2" whatever the customer ids.
		{Source: "sophos2", CustomerID: "0", Result: CustomerHeld},
	}
	for _, cs := range in {
		if err := db.PutCustomerStatus(cs); err != nil {
			t.Fatalf("PutCustomerStatus(%+v) returned error: %v", cs, err)
		}
	}

	got, ok, err := db.CustomerStatus("sophos", "b")
	if err != nil || !ok {
		t.Fatalf("CustomerStatus returned %v, %v", ok, err)
	}
	if !cmp.Equal(got, in[0]) {
		t.Errorf("CustomerStatus round trip: %s", cmp.Diff(in[0], got))
	}

	// Put replaces.
	upd := in[1]
	upd.Result = CustomerFailed
	upd.Error = "boom"
	if err := db.PutCustomerStatus(upd); err != nil {
		t.Fatal(err)
	}

	all, err := db.CustomerStatuses()
	if err != nil {
		t.Fatal(err)
	}
	want := []CustomerStatus{in[2], upd, in[0], in[3]}
	if !cmp.Equal(all, want) {
		t.Errorf("CustomerStatuses mismatch (-want +got):\n%s", cmp.Diff(want, all))
	}

	if _, ok, err := db.CustomerStatus("sophos", "missing"); ok || err != nil {
		t.Errorf("CustomerStatus(missing) = %v, %v; want false, nil", ok, err)
	}
}

func TestCustomerStatus_badKeys(t *testing.T) {
	t.Parallel()
	db := openTest(t)
	for _, cs := range []CustomerStatus{
		{Source: "", CustomerID: "a"},
		{Source: "sophos", CustomerID: ""},
		{Source: "sop\x00hos", CustomerID: "a"},
	} {
		if err := db.PutCustomerStatus(cs); err == nil {
			t.Errorf("PutCustomerStatus(%q, %q) returned nil error", cs.Source, cs.CustomerID)
		}
	}
	if all, err := db.CustomerStatuses(); err != nil || len(all) != 0 {
		t.Errorf("CustomerStatuses = %v, %v; want none", all, err)
	}
}

func TestRuns_lifecycleOrderAndLimit(t *testing.T) {
	t.Parallel()
	db := openTest(t)

	if runs, err := db.Runs(10); err != nil || len(runs) != 0 {
		t.Fatalf("Runs on empty db = %v, %v", runs, err)
	}

	var ids []int64
	for i := range 5 {
		r, err := db.BeginRun(Run{Trigger: "schedule", Started: t0.Add(time.Duration(i) * time.Hour), Period: "2026-11"})
		if err != nil {
			t.Fatal(err)
		}
		if r.Result != RunRunning {
			t.Errorf("BeginRun Result = %q, want %q", r.Result, RunRunning)
		}
		ids = append(ids, r.ID)
	}
	for i := 1; i < len(ids); i++ {
		if ids[i] <= ids[i-1] {
			t.Fatalf("run ids not increasing: %v", ids)
		}
	}

	r, ok, err := db.Run(ids[2])
	if err != nil || !ok {
		t.Fatalf("Run(%d) = %v, %v", ids[2], ok, err)
	}
	r.Finished = r.Started.Add(90 * time.Second)
	r.Result = RunPartial
	r.Error = "hourly budget nearly used"
	r.Updated, r.Unchanged, r.Held, r.Failed, r.Requests, r.Customers = 3, 40, 1, 2, 57, 12
	r.DryRun = true
	r.Customer = "718b"
	if err := db.SaveRun(r); err != nil {
		t.Fatalf("SaveRun returned error: %v", err)
	}
	got, ok, err := db.Run(ids[2])
	if err != nil || !ok || !cmp.Equal(got, r) {
		t.Errorf("Run after SaveRun = %+v, %v, %v; want %+v", got, ok, err, r)
	}

	if err := db.SaveRun(Run{ID: 999}); err == nil {
		t.Error("SaveRun of an unknown run returned nil error")
	}
	if _, ok, err := db.Run(999); ok || err != nil {
		t.Errorf("Run(999) = %v, %v; want false, nil", ok, err)
	}

	runs, err := db.Runs(3)
	if err != nil {
		t.Fatal(err)
	}
	var gotIDs []int64
	for _, r := range runs {
		gotIDs = append(gotIDs, r.ID)
	}
	if want := []int64{ids[4], ids[3], ids[2]}; !cmp.Equal(gotIDs, want) {
		t.Errorf("Runs(3) ids = %v, want %v", gotIDs, want)
	}
	if runs[2].Result != RunPartial {
		t.Errorf("Runs(3)[2].Result = %q, want %q", runs[2].Result, RunPartial)
	}
	all, err := db.Runs(0)
	if err != nil || len(all) != 5 || all[0].ID != ids[4] || all[4].ID != ids[0] {
		t.Errorf("Runs(0) = %d runs, %v; want all 5 newest first", len(all), err)
	}
}

func TestRuns_idsSortNumericallyPast255(t *testing.T) {
	t.Parallel()
	db := openTest(t)
	var last int64
	for range 300 {
		r, err := db.BeginRun(Run{Trigger: "api", Started: t0})
		if err != nil {
			t.Fatal(err)
		}
		last = r.ID
	}
	runs, err := db.Runs(2)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 || runs[0].ID != last || runs[1].ID != last-1 {
		t.Errorf("Runs(2) = %+v, want ids %d, %d", runs, last, last-1)
	}
}

func testIntent() Intent {
	return Intent{
		RunID: 3, System: psa.SystemAutotask, Source: "sophos", CustomerID: "718b",
		ContractID: "29684183", ServiceID: "30000012",
		Before: 40, After: 42, BeforeKnown: true,
		EffectiveDate: time.Date(2026, time.November, 1, 0, 0, 0, 0, time.UTC),
		Created:       t0,
	}
}

func TestIntent_lifecycleDoneAppendsLedger(t *testing.T) {
	t.Parallel()
	db := openTest(t)

	in, err := db.OpenIntent(testIntent())
	if err != nil {
		t.Fatalf("OpenIntent returned error: %v", err)
	}
	if in.ID == 0 || in.State != IntentOpen {
		t.Errorf("OpenIntent = ID %d State %q, want an id and %q", in.ID, in.State, IntentOpen)
	}
	open, err := db.OpenIntents()
	if err != nil {
		t.Fatal(err)
	}
	if want := []Intent{in}; !cmp.Equal(open, want) {
		t.Errorf("OpenIntents mismatch (-want +got):\n%s", cmp.Diff(want, open))
	}
	if _, ok, _ := db.LastSet(in.ContractID, in.ServiceID); ok {
		t.Error("LastSet found an entry before the intent was done")
	}

	at := t0.Add(time.Minute)
	if err := db.CompleteIntent(in.ID, IntentDone, "adjustment posted", at); err != nil {
		t.Fatalf("CompleteIntent returned error: %v", err)
	}
	if open, err := db.OpenIntents(); err != nil || len(open) != 0 {
		t.Errorf("OpenIntents after done = %v, %v; want none", open, err)
	}

	want := LedgerEntry{
		Seq: 1, RunID: 3, System: psa.SystemAutotask, Source: "sophos", CustomerID: "718b",
		ContractID: "29684183", ServiceID: "30000012", Before: 40, After: 42,
		EffectiveDate: in.EffectiveDate, Time: at, IntentID: in.ID,
	}
	got, ok, err := db.LastSet("29684183", "30000012")
	if err != nil || !ok {
		t.Fatalf("LastSet = %v, %v", ok, err)
	}
	if !cmp.Equal(got, want) {
		t.Errorf("LastSet mismatch (-want +got):\n%s", cmp.Diff(want, got))
	}

	// A closed intent cannot be completed again, whatever the new state.
	for _, s := range []string{IntentDone, IntentFailed, IntentReview} {
		err := db.CompleteIntent(in.ID, s, "", at)
		if err == nil || !strings.Contains(err.Error(), "already done") {
			t.Errorf("CompleteIntent(%s) on a done intent = %v, want an 'already done' error", s, err)
		}
	}
	if l, err := db.Ledger(0); err != nil || len(l) != 1 {
		t.Errorf("Ledger after repeated completion = %d entries, %v; want 1", len(l), err)
	}
}

func TestIntent_failedAndReviewWriteNoLedger(t *testing.T) {
	t.Parallel()
	db := openTest(t)
	for _, s := range []string{IntentFailed, IntentReview} {
		in, err := db.OpenIntent(testIntent())
		if err != nil {
			t.Fatal(err)
		}
		if err := db.CompleteIntent(in.ID, s, "autotask: 500", t0); err != nil {
			t.Fatalf("CompleteIntent(%s) returned error: %v", s, err)
		}
		if err := db.CompleteIntent(in.ID, IntentDone, "", t0); err == nil {
			t.Errorf("CompleteIntent(done) after %s returned nil error", s)
		}
	}
	if l, err := db.Ledger(0); err != nil || len(l) != 0 {
		t.Errorf("Ledger = %v, %v; want empty", l, err)
	}
	if _, ok, err := db.LastSet("29684183", "30000012"); ok || err != nil {
		t.Errorf("LastSet = %v, %v; want false, nil", ok, err)
	}
	if open, err := db.OpenIntents(); err != nil || len(open) != 0 {
		t.Errorf("OpenIntents = %v, %v; want none", open, err)
	}
}

func TestIntent_errors(t *testing.T) {
	t.Parallel()
	db := openTest(t)
	if err := db.CompleteIntent(42, IntentDone, "", t0); err == nil || !strings.Contains(err.Error(), "no such intent") {
		t.Errorf("CompleteIntent(unknown) = %v, want a 'no such intent' error", err)
	}
	in, err := db.OpenIntent(testIntent())
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CompleteIntent(in.ID, "open", "", t0); err == nil {
		t.Error("CompleteIntent(state open) returned nil error")
	}
	if err := db.CompleteIntent(in.ID, "bogus", "", t0); err == nil {
		t.Error("CompleteIntent(state bogus) returned nil error")
	}
	bad := testIntent()
	bad.ServiceID = ""
	if _, err := db.OpenIntent(bad); err == nil {
		t.Error("OpenIntent without a service id returned nil error")
	}
	// The intent survives the rejected completions.
	if open, err := db.OpenIntents(); err != nil || len(open) != 1 || open[0].ID != in.ID {
		t.Errorf("OpenIntents = %v, %v; want only %d", open, err, in.ID)
	}
}

func TestIntent_stateIsForcedOpenAndCreatedDefaulted(t *testing.T) {
	t.Parallel()
	db := openTest(t)
	req := testIntent()
	req.State = IntentDone
	req.Created = time.Time{}
	in, err := db.OpenIntent(req)
	if err != nil {
		t.Fatal(err)
	}
	if in.State != IntentOpen || in.Created.IsZero() {
		t.Errorf("OpenIntent = State %q Created %v, want open and a time", in.State, in.Created)
	}
}

func TestIntent_concurrentWriters(t *testing.T) {
	t.Parallel()
	db := openTest(t)

	const writers, each = 8, 10
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			for i := range each {
				req := testIntent()
				req.ServiceID = fmt.Sprintf("s%d-%d", w, i)
				in, err := db.OpenIntent(req)
				if err != nil {
					errs <- err
					return
				}
				if err := db.CompleteIntent(in.ID, IntentDone, "", t0); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	ledger, err := db.Ledger(0)
	if err != nil {
		t.Fatal(err)
	}
	seqs := map[int64]bool{}
	intents := map[int64]bool{}
	for _, e := range ledger {
		seqs[e.Seq] = true
		intents[e.IntentID] = true
	}
	if len(ledger) != writers*each || len(seqs) != writers*each || len(intents) != writers*each {
		t.Errorf("ledger has %d entries, %d distinct seqs, %d distinct intents; want %d of each",
			len(ledger), len(seqs), len(intents), writers*each)
	}
}

func TestLedger_appendOrderAndLastSet(t *testing.T) {
	t.Parallel()
	db := openTest(t)

	type line struct{ contract, service string }
	steps := []struct {
		line          line
		before, after int64
	}{
		{line{"c1", "s1"}, 0, 10},
		{line{"c1", "s2"}, 5, 6},
		{line{"c1", "s1"}, 10, 12},
		{line{"c2", "s1"}, 0, 1},
		{line{"c1", "s1"}, 12, 7},
	}
	for i, s := range steps {
		req := testIntent()
		req.ContractID, req.ServiceID = s.line.contract, s.line.service
		req.Before, req.After = s.before, s.after
		in, err := db.OpenIntent(req)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.CompleteIntent(in.ID, IntentDone, "", t0.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}

	all, err := db.Ledger(0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(steps) {
		t.Fatalf("Ledger(0) has %d entries, want %d", len(all), len(steps))
	}
	for i, e := range all {
		s := steps[len(steps)-1-i]
		if e.Seq != int64(len(steps)-i) || e.ContractID != s.line.contract || e.After != s.after {
			t.Errorf("Ledger(0)[%d] = seq %d %s/%s after %d; want seq %d %s/%s after %d",
				i, e.Seq, e.ContractID, e.ServiceID, e.After, len(steps)-i, s.line.contract, s.line.service, s.after)
		}
	}
	two, err := db.Ledger(2)
	if err != nil || len(two) != 2 || two[0].Seq != 5 || two[1].Seq != 4 {
		t.Errorf("Ledger(2) = %+v, %v; want seqs 5, 4", two, err)
	}

	for _, tc := range []struct {
		line  line
		after int64
		seq   int64
	}{
		{line{"c1", "s1"}, 7, 5},
		{line{"c1", "s2"}, 6, 2},
		{line{"c2", "s1"}, 1, 4},
	} {
		e, ok, err := db.LastSet(tc.line.contract, tc.line.service)
		if err != nil || !ok || e.After != tc.after || e.Seq != tc.seq {
			t.Errorf("LastSet(%s, %s) = %+v, %v, %v; want after %d seq %d", tc.line.contract, tc.line.service, e, ok, err, tc.after, tc.seq)
		}
	}
	// "c1"+"s1" must not be confused with "c1s"+"1": the key separator is NUL.
	if _, ok, err := db.LastSet("c1s", "1"); ok || err != nil {
		t.Errorf("LastSet(c1s, 1) = %v, %v; want false, nil", ok, err)
	}
}

func TestJSONFieldNames(t *testing.T) {
	t.Parallel()
	// The stored records (and anything that serves them as JSON) use
	// snake_case names; renaming one needs a SchemaVersion bump.
	data, err := json.Marshal(LedgerEntry{Seq: 1, ContractID: "c", EffectiveDate: t0, Time: t0})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"seq":1,"run_id":0,"system":"","source":"","customer_id":"","contract_id":"c","service_id":"",` +
		`"before":0,"after":0,"effective_date":"2026-11-21T10:00:00Z","time":"2026-11-21T10:00:00Z","intent_id":0}`
	if string(data) != want {
		t.Errorf("LedgerEntry JSON = %s, want %s", data, want)
	}
}

// The crash-safety test runs a child copy of this test binary that opens an
// intent and dies without closing the database, the way a SIGKILL or a
// power cut would leave it.
const crashEnv = "PSA_SYNC_STATE_CRASH_CHILD_DIR"

// TestMain turns this test binary into the crash child when crashEnv is
// set, before any test runs.
func TestMain(m *testing.M) {
	if dir := os.Getenv(crashEnv); dir != "" {
		crashChild(dir)
	}
	os.Exit(m.Run())
}

// crashChild completes one intent, opens another, reports its id and then
// blocks until the parent kills it, exactly where a daemon would be
// sending the write. It never closes the database.
func crashChild(dir string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	db, err := Open(dir)
	if err != nil {
		fail(err)
	}
	done, err := db.OpenIntent(testIntent())
	if err != nil {
		fail(err)
	}
	if err := db.CompleteIntent(done.ID, IntentDone, "", t0); err != nil {
		fail(err)
	}
	in, err := db.OpenIntent(testIntent())
	if err != nil {
		fail(err)
	}
	fmt.Printf("intent %d\n", in.ID) // os.Stdout is unbuffered: the parent reads it now
	select {}
}

func TestIntent_survivesCrash(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()

	// TestMain diverts the child before any test runs; -test.run=^$ makes
	// sure it would run none even if it did not.
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var id int64
	if _, err := fmt.Fscanf(stdout, "intent %d\n", &id); err != nil {
		// The test fails either way; kill and reap the child so that it
		// does not outlive it.
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("reading the child's intent id: %v (stderr: %s)", err, stderr.String())
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no deferred Close, no clean exit
		t.Fatal(err)
	}
	if err := cmd.Wait(); err == nil {
		t.Fatal("child exited cleanly, want killed")
	}

	db, err := Open(dir)
	if err != nil {
		t.Fatalf("reopening after the crash returned error: %v", err)
	}
	defer closeDB(t, db)
	open, err := db.OpenIntents()
	if err != nil {
		t.Fatal(err)
	}
	if len(open) != 1 || open[0].ID != id || open[0].State != IntentOpen || open[0].After != 42 {
		t.Fatalf("OpenIntents after crash = %+v, want intent %d open", open, id)
	}
	if l, err := db.Ledger(0); err != nil || len(l) != 1 || l[0].IntentID == id {
		t.Errorf("Ledger after crash = %+v, %v; want only the completed intent's entry", l, err)
	}
	// The in-flight intent can be settled after the restart.
	if err := db.CompleteIntent(id, IntentDone, "reconciled: PSA shows 42", t0); err != nil {
		t.Errorf("CompleteIntent after crash returned error: %v", err)
	}
}

func TestItob(t *testing.T) {
	t.Parallel()
	for _, v := range []int64{0, 1, 255, 256, 1 << 40} {
		if got := btoi(itob(v)); got != v {
			t.Errorf("btoi(itob(%d)) = %d", v, got)
		}
	}
	if btoi([]byte{1}) != -1 {
		t.Error("btoi of a short key did not return -1")
	}
}

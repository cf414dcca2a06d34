package state

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// fillWithCloses opens n intents, limits the database to its size, then
// closes them as done (each with a ledger entry) until the disk is full,
// and returns the intents left open: closing any of them needs more space.
func fillWithCloses(t *testing.T, db *DB, n int) []Intent {
	t.Helper()
	var ins []Intent
	for i := range n {
		in, err := db.OpenIntent(Intent{System: psa.SystemKaseyaBMS, Source: "s", CustomerID: "c", ContractID: fmt.Sprint(i),
			ServiceID: strings.Repeat("s", 100), After: int64(i + 1)})
		if err != nil {
			t.Fatal(err)
		}
		ins = append(ins, in)
	}
	if err := db.LimitSize(0); err != nil {
		t.Fatal(err)
	}
	for i, in := range ins {
		if err := db.CompleteIntent(in.ID, IntentDone, "", time.Now()); err != nil {
			if !strings.Contains(err.Error(), "database or disk is full") {
				t.Fatalf("filling the database: %v", err)
			}
			return ins[i:]
		}
	}
	t.Fatal("the database did not fill up")
	return nil
}

// TestFullDisk_flushReportsDeferredOnce: the closes of intents that a full
// disk failed are reported by the Flush that follows, naming the database
// and saying it is full, and not again at Close. The intents stay open,
// and are closed once there is space again; the file is sound after.
func TestFullDisk_flushReportsDeferredOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	in := fillWithCloses(t, db, 300)[0]
	if err := db.CompleteIntentDeferred(IntentCompletion{ID: in.ID, State: IntentDone, At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	err = db.Flush(t.Context())
	if err == nil || !strings.Contains(err.Error(), db.Path()) || !strings.Contains(err.Error(), "database or disk is full") {
		t.Errorf("Flush on a full disk = %v, want an error naming %s and saying it is full", err, db.Path())
	}
	if err := db.Flush(t.Context()); err != nil {
		t.Errorf("second Flush = %v, want nil: the error was reported", err)
	}
	open, err := db.OpenIntents()
	if err != nil {
		t.Fatal(err)
	}
	if len(open) == 0 || open[0].ID != in.ID {
		t.Fatalf("first open intent = %+v, want intent %d still open", open[:min(1, len(open))], in.ID)
	}
	if err := db.LimitSize(-1); err != nil {
		t.Fatal(err)
	}
	if err := db.CompleteIntent(in.ID, IntentDone, "", time.Now()); err != nil {
		t.Errorf("closing the intent with space again: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Errorf("Close = %v, want nil", err)
	}
	// The write-ahead log is sound: the file opens (quick_check) with the
	// intent closed and its ledger entry.
	db, err = Open(dir)
	if err != nil {
		t.Fatalf("reopening after a full disk: %v", err)
	}
	defer closeDB(t, db)
	le, ok, err := db.LastSet(in.ContractID, in.ServiceID)
	if err != nil || !ok || le.After != in.After || le.IntentID != in.ID {
		t.Errorf("LastSet after reopening = %+v, %v, %v; want intent %d's %d units", le, ok, err, in.ID, in.After)
	}
}

// TestFullDisk_groupErrorNamesTheFailingOperation: when one operation of a
// group commit fails (a close whose ledger entry the disk cannot hold), the
// others sharing its transaction are told that it failed theirs, not given
// its error as their own.
func TestFullDisk_groupErrorNamesTheFailingOperation(t *testing.T) {
	t.Parallel()
	db, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer closeDB(t, db)
	ins := fillWithCloses(t, db, 300)
	if len(ins) < 2 {
		t.Fatalf("%d intents left open, want 2", len(ins))
	}
	// A deferred operation waits for the next group, which the second
	// close's caller makes: one transaction holds both (the delay keeps a
	// slow machine from committing it alone first).
	db.group.mu.Lock()
	db.group.delay = time.Hour
	db.group.mu.Unlock()
	if err := db.group.submitDeferred(db, &groupOp{what: "storing nothing", run: func(context.Context, *sql.Tx) error { return nil }}); err != nil {
		t.Fatal(err)
	}
	err = db.CompleteIntent(ins[1].ID, IntentDone, "", time.Now())
	want := fmt.Sprintf("completing intent %d in %s: appending the ledger entry of intent %d: database or disk is full", ins[1].ID, db.Path(), ins[1].ID)
	if err == nil || !strings.HasPrefix(err.Error(), "state: "+want) {
		t.Errorf("error of the failing close = %v, want %q", err, want)
	}
	err = db.Flush(t.Context())
	want = fmt.Sprintf("storing nothing in %s: the transaction it shared failed at completing intent %d: appending the ledger entry", db.Path(), ins[1].ID)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error of the operation sharing its transaction = %v, want %q", err, want)
	}
}

package state

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"modernc.org/sqlite"

	"github.com/psa-sync/terraform-provider-psa/daemon/state/pgtest"
)

// commitCounter returns a function that reports how many transactions were
// committed on db since commitCounter was called. On SQLite SQLite itself
// counts them (its commit hook sees every commit of the one connection,
// including any this package forgot to count), and the package's own
// counter, which PostgreSQL relies on, is checked against it.
func commitCounter(t *testing.T, db *DB) func() int64 {
	t.Helper()
	base := db.commits.Load()
	if db.dialect != dialectSQLite {
		return func() int64 { return db.commits.Load() - base }
	}
	var hooked atomic.Int64
	conn, err := db.sql.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	err = conn.Raw(func(dc any) error {
		h, ok := dc.(sqlite.HookRegisterer)
		if !ok {
			return fmt.Errorf("%T has no commit hook", dc)
		}
		h.RegisterCommitHook(func() int32 { hooked.Add(1); return 0 })
		return nil
	})
	if cerr := conn.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	return func() int64 {
		t.Helper()
		n := hooked.Load()
		if own := db.commits.Load() - base; own != n {
			t.Errorf("the package counted %d commits, SQLite %d", own, n)
		}
		return n
	}
}

// pauseCommitter stops db's committer before its next group until release
// is called; taken receives the size of that group. Callers that submit
// meanwhile queue up behind it, which makes the next group's content known.
func pauseCommitter(t *testing.T, db *DB) (taken <-chan int, release func()) {
	t.Helper()
	ch := make(chan int, 1)
	gate := make(chan struct{})
	var once atomic.Bool
	db.group.mu.Lock()
	db.group.beforeGroup = func(n int) {
		if once.CompareAndSwap(false, true) {
			ch <- n
			<-gate
		}
	}
	db.group.mu.Unlock()
	var released atomic.Bool
	release = func() {
		if released.CompareAndSwap(false, true) {
			close(gate)
		}
	}
	t.Cleanup(release)
	return ch, release
}

// waitQueued waits until n operations wait for db's committer.
func waitQueued(t *testing.T, db *DB, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for db.group.queued() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d operations queued, want %d", db.group.queued(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// outcome is what one concurrent caller got.
type outcome struct {
	what    string
	err     error
	intents []Intent
}

// writeConcurrently starts every write of writes in its own goroutine and
// returns a function that waits for their outcomes.
func writeConcurrently(writes map[string]func() ([]Intent, error)) func() map[string]outcome {
	ch := make(chan outcome, len(writes))
	for what, w := range writes {
		go func() {
			ins, err := w()
			ch <- outcome{what, err, ins}
		}()
	}
	return func() map[string]outcome {
		out := map[string]outcome{}
		for range writes {
			o := <-ch
			out[o.what] = o
		}
		return out
	}
}

func openOne(db *DB, service string) func() ([]Intent, error) {
	return func() ([]Intent, error) {
		req := testIntent()
		req.ServiceID = service
		in, err := db.OpenIntent(req)
		return []Intent{in}, err
	}
}

func complete(db *DB, id int64) func() ([]Intent, error) {
	return func() ([]Intent, error) { return nil, db.CompleteIntent(id, IntentDone, "", t0) }
}

func putStatus(db *DB, customer string) func() ([]Intent, error) {
	return func() ([]Intent, error) {
		return nil, db.PutCustomerStatus(CustomerStatus{Source: "sophos", CustomerID: customer, Result: CustomerSucceeded, LastAttempt: t0})
	}
}

func openBatch(db *DB, services ...string) func() ([]Intent, error) {
	return func() ([]Intent, error) {
		var reqs []Intent
		for _, s := range services {
			req := testIntent()
			req.ServiceID = s
			reqs = append(reqs, req)
		}
		return db.OpenIntentBatch(context.Background(), reqs)
	}
}

func TestGroupCommit_concurrentWritesShareOneCommit(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		var toClose []Intent
		for i := range 3 {
			req := testIntent()
			req.ServiceID = fmt.Sprint("close-", i)
			in, err := db.OpenIntent(req)
			if err != nil {
				t.Fatal(err)
			}
			toClose = append(toClose, in)
		}
		commits := commitCounter(t, db)
		taken, release := pauseCommitter(t, db)
		first := writeConcurrently(map[string]func() ([]Intent, error){"first": putStatus(db, "first")})
		if n := <-taken; n != 1 {
			t.Fatalf("first group holds %d operations, want 1", n)
		}
		writes := map[string]func() ([]Intent, error){
			"unknown": complete(db, 999999),
			"status1": putStatus(db, "c1"),
			"status2": putStatus(db, "c2"),
			"batch":   openBatch(db, "b0", "b1"),
		}
		for i := range 5 {
			writes[fmt.Sprint("open", i)] = openOne(db, fmt.Sprint("g", i))
		}
		for i, in := range toClose {
			writes[fmt.Sprint("complete", i)] = complete(db, in.ID)
		}
		wait := writeConcurrently(writes)
		waitQueued(t, db, len(writes))
		release()
		if got := first()["first"]; got.err != nil {
			t.Fatal(got.err)
		}
		got := wait()
		if n := commits(); n != 2 {
			t.Errorf("%d commits for 1 + %d concurrent writes queued behind it, want 2", n, len(writes))
		}

		// The refused completion got its own error; the rest committed.
		if err := got["unknown"].err; err == nil || !strings.Contains(err.Error(), "no such intent") {
			t.Errorf("CompleteIntent(unknown) in a group = %v, want a 'no such intent' error", err)
		}
		ids := map[int64]bool{}
		for what, o := range got {
			if what == "unknown" {
				continue
			}
			if o.err != nil {
				t.Errorf("%s: %v", what, o.err)
			}
			for _, in := range o.intents {
				if in.ID == 0 || ids[in.ID] {
					t.Errorf("%s: intent id %d is zero or given twice", what, in.ID)
				}
				ids[in.ID] = true
			}
		}
		if b := got["batch"].intents; len(b) != 2 || b[0].ServiceID != "b0" || b[1].ServiceID != "b1" || b[0].ID >= b[1].ID {
			t.Errorf("OpenIntentBatch = %+v, want b0 and b1 in order with increasing ids", b)
		}
		open, err := db.OpenIntents()
		if err != nil || len(open) != 7 {
			t.Errorf("OpenIntents = %d intents, %v; want the 7 opened in the group", len(open), err)
		}
		for _, in := range open {
			if !ids[in.ID] {
				t.Errorf("open intent %d was not reported as opened", in.ID)
			}
		}
		if l, err := db.Ledger(0); err != nil || len(l) != 3 {
			t.Errorf("Ledger = %d entries, %v; want the 3 completed in the group", len(l), err)
		}
		if st, err := db.CustomerStatuses(); err != nil || len(st) != 3 {
			t.Errorf("CustomerStatuses = %d, %v; want 3", len(st), err)
		}
	})
}

// poison makes the database fail to store the status of customer
// "poison", the way a full disk or a broken connection fails a statement.
func poison(t *testing.T, db *DB) {
	t.Helper()
	stmts := []string{`CREATE TRIGGER poison BEFORE INSERT ON customers WHEN NEW.customer_id = 'poison'
		BEGIN SELECT RAISE(ABORT, 'poisoned status'); END`}
	if db.dialect == dialectPostgres {
		stmts = []string{
			`CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN IF NEW.customer_id = 'poison' THEN RAISE EXCEPTION 'poisoned status'; END IF; RETURN NEW; END $$`,
			`CREATE TRIGGER poison BEFORE INSERT ON customers FOR EACH ROW EXECUTE FUNCTION poison()`,
		}
	}
	for _, s := range stmts {
		if _, err := db.sql.ExecContext(t.Context(), s); err != nil {
			t.Fatal(err)
		}
	}
}

func TestGroupCommit_failureReachesEveryCallerAndWritesNothing(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		pending, err := db.OpenIntent(testIntent())
		if err != nil {
			t.Fatal(err)
		}
		poison(t, db)
		taken, release := pauseCommitter(t, db)
		first := writeConcurrently(map[string]func() ([]Intent, error){"first": putStatus(db, "first")})
		<-taken
		writes := map[string]func() ([]Intent, error){
			"open0":    openOne(db, "g0"),
			"open1":    openOne(db, "g1"),
			"batch":    openBatch(db, "b0", "b1"),
			"complete": complete(db, pending.ID),
			"poison":   putStatus(db, "poison"),
			"status":   putStatus(db, "c1"),
		}
		wait := writeConcurrently(writes)
		waitQueued(t, db, len(writes))
		release()
		if got := first()["first"]; got.err != nil {
			t.Fatal(got.err)
		}
		for what, o := range wait() {
			if o.err == nil || !strings.Contains(o.err.Error(), "poisoned status") {
				t.Errorf("%s in the failed group = %v, want the group's error", what, o.err)
			}
			// The server refused a statement: its connection works.
			if o.err != nil && strings.Contains(o.err.Error(), "leadership lock") {
				t.Errorf("%s in the failed group = %v, which blames the leadership lock's connection", what, o.err)
			}
		}
		open, err := db.OpenIntents()
		if err != nil || len(open) != 1 || open[0].ID != pending.ID {
			t.Errorf("OpenIntents = %+v, %v; want only intent %d, still open", open, err, pending.ID)
		}
		if l, err := db.Ledger(0); err != nil || len(l) != 0 {
			t.Errorf("Ledger = %+v, %v; want empty", l, err)
		}
		if st, err := db.CustomerStatuses(); err != nil || len(st) != 1 || st[0].CustomerID != "first" {
			t.Errorf("CustomerStatuses = %+v, %v; want only first's", st, err)
		}
		// The committer goes on after a failed group.
		if err := db.CompleteIntent(pending.ID, IntentDone, "", t0); err != nil {
			t.Errorf("CompleteIntent after a failed group: %v", err)
		}
	})
}

func TestPutCustomerStatusBatch_noChangePassIsOneCommit(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		const n = 2000
		statuses := make([]CustomerStatus, n)
		for i := range statuses {
			statuses[i] = CustomerStatus{
				Source: "sophos", CustomerID: fmt.Sprintf("cust-%05d", i), CustomerName: fmt.Sprint("Customer ", i),
				CompanyID: fmt.Sprint(i), ContractID: fmt.Sprint(1000 + i), UsageSync: true, LastAttempt: t0,
				LastSuccess: t0, Result: CustomerSucceeded, RunID: "1", Unchanged: 5,
			}
		}
		commits := commitCounter(t, db)
		if err := db.PutCustomerStatusBatch(t.Context(), statuses); err != nil {
			t.Fatal(err)
		}
		// The next pass changes nothing: the same statuses, a later attempt.
		for i := range statuses {
			statuses[i].LastAttempt, statuses[i].LastSuccess, statuses[i].RunID = t0.Add(time.Hour), t0.Add(time.Hour), "2"
		}
		before := commits()
		if err := db.PutCustomerStatusBatch(t.Context(), statuses); err != nil {
			t.Fatal(err)
		}
		if got := commits() - before; got != 1 {
			t.Errorf("storing %d statuses cost %d commits, want 1", n, got)
		}
		got, err := db.CustomerStatuses()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != n {
			t.Fatalf("CustomerStatuses = %d, want %d", len(got), n)
		}
		for i, cs := range got {
			if cs != statuses[i] {
				t.Fatalf("status %d = %+v, want %+v", i, cs, statuses[i])
			}
		}

		// A customer given twice gets its last status, as two puts would.
		twice := []CustomerStatus{
			{Source: "sophos", CustomerID: "dup", Result: CustomerFailed, Error: "first"},
			{Source: "sophos", CustomerID: "dup", Result: CustomerSucceeded},
		}
		if err := db.PutCustomerStatusBatch(t.Context(), twice); err != nil {
			t.Fatal(err)
		}
		if cs, ok, err := db.CustomerStatus("sophos", "dup"); err != nil || !ok || cs != twice[1] {
			t.Errorf("CustomerStatus(dup) = %+v, %v, %v; want the last one given", cs, ok, err)
		}

		// A batch of bad keys only, and an empty one, cost no commit.
		before = commits()
		bad := []CustomerStatus{{Source: "sophos"}, {CustomerID: "no-source"}}
		if err := db.PutCustomerStatusBatch(t.Context(), bad); err == nil || !strings.Contains(err.Error(), "status 1 of 2") || !strings.Contains(err.Error(), "status 2 of 2") {
			t.Errorf("PutCustomerStatusBatch with empty ids = %v, want an error naming statuses 1 and 2 of 2", err)
		}
		if err := db.PutCustomerStatusBatch(t.Context(), nil); err != nil {
			t.Error(err)
		}
		if got := commits() - before; got != 0 {
			t.Errorf("a batch of bad keys and an empty batch cost %d commits, want 0", got)
		}
	})
}

func TestIntentBatch_allOrNothingInOneCommit(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		commits := commitCounter(t, db)
		reqs := make([]Intent, 4)
		for i := range reqs {
			reqs[i] = testIntent()
			reqs[i].ServiceID = fmt.Sprint("s", i)
			reqs[i].After = int64(50 + i)
		}
		reqs[1].Created = time.Time{}
		ins, err := db.OpenIntentBatch(t.Context(), reqs)
		if err != nil {
			t.Fatal(err)
		}
		if n := commits(); n != 1 {
			t.Errorf("OpenIntentBatch of %d cost %d commits, want 1", len(reqs), n)
		}
		open, err := db.OpenIntents()
		if err != nil || len(open) != len(reqs) {
			t.Fatalf("OpenIntents = %d, %v; want %d", len(open), err, len(reqs))
		}
		for i, in := range ins {
			if in != open[i] || in.ServiceID != reqs[i].ServiceID || in.State != IntentOpen || in.Created.IsZero() {
				t.Errorf("OpenIntentBatch[%d] = %+v, want %+v as stored, for service %s", i, in, open[i], reqs[i].ServiceID)
			}
		}

		// One bad intent opens none of them.
		bad := []Intent{testIntent(), testIntent()}
		bad[1].ContractID = ""
		if _, err := db.OpenIntentBatch(t.Context(), bad); err == nil || !strings.Contains(err.Error(), "intent 2 of 2") {
			t.Errorf("OpenIntentBatch with an empty contract id = %v, want an error naming intent 2 of 2", err)
		}

		// One intent that cannot be completed completes none of them.
		if err := db.CompleteIntent(ins[3].ID, IntentFailed, "", t0); err != nil {
			t.Fatal(err)
		}
		before := commits()
		cs := []IntentCompletion{
			{ID: ins[0].ID, State: IntentDone, At: t0},
			{ID: ins[1].ID, State: IntentReview, Note: "look"},
			{ID: ins[3].ID, State: IntentDone},
		}
		if err := db.CompleteIntentBatch(t.Context(), cs); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("intent %d: already failed", ins[3].ID)) {
			t.Errorf("CompleteIntentBatch with a closed intent = %v, want an 'already failed' error naming it", err)
		}
		if open, err := db.OpenIntents(); err != nil || len(open) != 3 {
			t.Errorf("OpenIntents after a refused CompleteIntentBatch = %d, %v; want 3", len(open), err)
		}
		if l, err := db.Ledger(0); err != nil || len(l) != 0 {
			t.Errorf("Ledger after a refused CompleteIntentBatch = %+v, %v; want empty", l, err)
		}
		cs = append(cs[:2], IntentCompletion{ID: ins[2].ID, State: IntentDone, At: t0.Add(time.Minute)})
		if err := db.CompleteIntentBatch(t.Context(), cs); err != nil {
			t.Fatal(err)
		}
		if open, err := db.OpenIntents(); err != nil || len(open) != 0 {
			t.Errorf("OpenIntents after CompleteIntentBatch = %+v, %v; want none", open, err)
		}
		l, err := db.Ledger(0)
		if err != nil || len(l) != 2 || l[0].IntentID != ins[2].ID || l[0].After != 52 || l[1].IntentID != ins[0].ID || !l[0].Time.Equal(t0.Add(time.Minute)) {
			t.Errorf("Ledger = %+v, %v; want the entries of intents %d and %d, newest first", l, err, ins[2].ID, ins[0].ID)
		}
		// The refused batch committed nothing.
		if got := commits() - before; got != 1 {
			t.Errorf("a refused and an accepted CompleteIntentBatch cost %d commits, want 1", got)
		}
		if err := db.CompleteIntentBatch(t.Context(), []IntentCompletion{{ID: 1, State: "open"}}); err == nil {
			t.Error("CompleteIntentBatch to state open returned nil error")
		}
	})
}

func TestGroupCommit_withdrawnWhileQueued(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		taken, release := pauseCommitter(t, db)
		first := writeConcurrently(map[string]func() ([]Intent, error){"first": putStatus(db, "first")})
		<-taken
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			_, err := db.OpenIntentBatch(ctx, []Intent{testIntent()})
			done <- err
		}()
		waitQueued(t, db, 1)
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("OpenIntentBatch cancelled while queued = %v, want context.Canceled", err)
		}
		release()
		if got := first()["first"]; got.err != nil {
			t.Fatal(got.err)
		}
		// The next write proves the committer has gone past the queue.
		if err := db.PutCustomerStatus(CustomerStatus{Source: "sophos", CustomerID: "later"}); err != nil {
			t.Fatal(err)
		}
		if open, err := db.OpenIntents(); err != nil || len(open) != 0 {
			t.Errorf("OpenIntents = %+v, %v; a withdrawn intent must never be committed", open, err)
		}
	})
}

func TestGroupCommit_closedDatabase(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openConfig(t, d.config(t))
		if err := db.PutCustomerStatus(CustomerStatus{Source: "sophos", CustomerID: "a"}); err != nil {
			t.Fatal(err)
		}
		closeDB(t, db)
		if _, err := db.OpenIntent(testIntent()); !errors.Is(err, errClosed) {
			t.Errorf("OpenIntent after Close = %v, want %v", err, errClosed)
		}
	})
}

// groupCrashChild writes from 8 goroutines until it is killed: each opens
// intents (one at a time, or two in a batch), reports "open ID" for each
// once it is committed, closes them as done (one at a time, or in a batch)
// and reports "done ID". Its group commits are in flight when it dies.
func groupCrashChild(db *DB, fail func(error)) {
	for w := range 8 {
		go func() {
			for i := 0; ; i++ {
				req := testIntent()
				req.ServiceID = fmt.Sprintf("w%d-%d", w, i)
				var ins []Intent
				if i%2 == 0 {
					in, err := db.OpenIntent(req)
					if err != nil {
						fail(err)
					}
					ins = []Intent{in}
				} else {
					other := req
					other.ServiceID += "b"
					var err error
					if ins, err = db.OpenIntentBatch(context.Background(), []Intent{req, other}); err != nil {
						fail(err)
					}
				}
				var cs []IntentCompletion
				for _, in := range ins {
					fmt.Printf("open %d\n", in.ID)
					cs = append(cs, IntentCompletion{ID: in.ID, State: IntentDone, At: t0})
				}
				var err error
				if w%2 == 0 {
					err = db.CompleteIntentBatch(context.Background(), cs)
				} else {
					for _, c := range cs {
						if err = db.CompleteIntent(c.ID, c.State, c.Note, c.At); err != nil {
							break
						}
					}
				}
				if err != nil {
					fail(err)
				}
				for _, in := range ins {
					fmt.Printf("done %d\n", in.ID)
				}
			}
		}()
	}
	select {}
}

// TestGroupCommit_survivesCrash kills a process that writes intents from
// many goroutines, through group commits, at a moment its transactions
// are in flight: every intent it was told was opened is there afterwards
// (open, or closed if it was closed), and every one it was told was closed
// is closed with its ledger entry.
func TestGroupCommit_survivesCrash(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		cfg := d.config(t)
		cmd, stdout, stderr := startCrashChild(t, cfg, "group")
		opened, done := map[int64]bool{}, map[int64]bool{}
		sc := bufio.NewScanner(stdout)
		for len(done) < 300 && sc.Scan() {
			var (
				what string
				id   int64
			)
			if _, err := fmt.Sscanf(sc.Text(), "%s %d", &what, &id); err != nil {
				t.Errorf("child wrote %q: %v", sc.Text(), err)
				continue
			}
			switch what {
			case "open":
				opened[id] = true
			case "done":
				done[id] = true
			}
		}
		_ = cmd.Process.Kill() // SIGKILL while it writes
		werr := cmd.Wait()
		if len(done) < 300 {
			t.Fatalf("child stopped after %d closed intents: %v (stderr: %s)", len(done), werr, stderr.String())
		}

		db := openConfig(t, cfg)
		defer closeDB(t, db)
		open, err := db.OpenIntents()
		if err != nil {
			t.Fatal(err)
		}
		ledger, err := db.Ledger(0)
		if err != nil {
			t.Fatal(err)
		}
		stored := map[int64]string{}
		for _, in := range open {
			stored[in.ID] = IntentOpen
		}
		for _, e := range ledger {
			if stored[e.IntentID] != "" {
				t.Errorf("intent %d is %s and has a ledger entry", e.IntentID, stored[e.IntentID])
			}
			stored[e.IntentID] = IntentDone
		}
		for id := range opened {
			if stored[id] == "" {
				t.Errorf("intent %d was reported as opened but is lost after the crash", id)
			}
		}
		for id := range done {
			if stored[id] != IntentDone {
				t.Errorf("intent %d was reported as done but is %q after the crash", id, stored[id])
			}
		}
		t.Logf("%d intents reported opened, %d done; after the kill %d are open and %d done", len(opened), len(done), len(open), len(ledger))
	})
}

// setDeferDelay sets how long db's deferred writes wait for a group.
func setDeferDelay(db *DB, d time.Duration) {
	db.group.mu.Lock()
	db.group.delay = d
	db.group.mu.Unlock()
}

func TestDeferred_ridesWithTheNextWaitingWrite(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		setDeferDelay(db, time.Hour)
		ins, err := db.OpenIntentBatch(t.Context(), []Intent{testIntent(), testIntent(), testIntent()})
		if err != nil {
			t.Fatal(err)
		}
		commits := commitCounter(t, db)
		for _, in := range ins {
			if err := db.CompleteIntentDeferred(IntentCompletion{ID: in.ID, State: IntentDone, At: t0}); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.PutCustomerStatusDeferred(CustomerStatus{Source: "sophos", CustomerID: "718b", Result: CustomerSucceeded}); err != nil {
			t.Fatal(err)
		}
		if n := commits(); n != 0 {
			t.Errorf("deferred writes made %d commits on their own before their delay, want 0", n)
		}
		next := testIntent()
		next.ServiceID = "next"
		if _, err := db.OpenIntent(next); err != nil {
			t.Fatal(err)
		}
		if n := commits(); n != 1 {
			t.Errorf("3 deferred completions, a deferred status and an intent opened after them cost %d commits, want 1", n)
		}
		open, err := db.OpenIntents()
		if err != nil || len(open) != 1 || open[0].ServiceID != "next" {
			t.Errorf("OpenIntents = %+v, %v; want only the intent opened last", open, err)
		}
		if l, err := db.Ledger(0); err != nil || len(l) != 3 {
			t.Errorf("Ledger = %d entries, %v; want 3", len(l), err)
		}
		if _, ok, err := db.CustomerStatus("sophos", "718b"); !ok || err != nil {
			t.Errorf("CustomerStatus of the deferred status = %v, %v; want it stored", ok, err)
		}
		if err := db.Flush(t.Context()); err != nil {
			t.Errorf("Flush = %v", err)
		}
	})
}

func TestDeferred_readsWaitForThem(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		setDeferDelay(db, time.Hour)
		in, err := db.OpenIntent(testIntent())
		if err != nil {
			t.Fatal(err)
		}
		if err := db.CompleteIntentDeferred(IntentCompletion{ID: in.ID, State: IntentDone, At: t0}); err != nil {
			t.Fatal(err)
		}
		// Nothing else is written: the read itself must get the
		// completion committed, or it would show the intent as open.
		if open, err := db.OpenIntents(); err != nil || len(open) != 0 {
			t.Errorf("OpenIntents after a deferred completion = %+v, %v; want none", open, err)
		}
		if e, ok, err := db.LastSet(in.ContractID, in.ServiceID); err != nil || !ok || e.IntentID != in.ID {
			t.Errorf("LastSet after a deferred completion = %+v, %v, %v; want intent %d's entry", e, ok, err, in.ID)
		}
	})
}

func TestDeferred_committedAfterTheirDelay(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		setDeferDelay(db, time.Millisecond)
		// The package's own counter: SQLite's commit hook runs inside the
		// commit, before the package counts it, so the two are compared
		// only where no commit is under way.
		base := db.commits.Load()
		if err := db.PutCustomerStatusDeferred(CustomerStatus{Source: "sophos", CustomerID: "718b"}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for db.commits.Load() == base {
			if time.Now().After(deadline) {
				t.Fatal("a deferred write with no other write after it was not committed")
			}
			time.Sleep(time.Millisecond)
		}
	})
}

func TestDeferred_errorsAtFlushAndClose(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openConfig(t, d.config(t))
		setDeferDelay(db, time.Hour)
		in, err := db.OpenIntent(testIntent())
		if err != nil {
			t.Fatal(err)
		}
		if err := db.CompleteIntentDeferred(IntentCompletion{ID: in.ID, State: "bogus"}); err == nil {
			t.Error("CompleteIntentDeferred to state bogus returned nil error")
		}
		if err := db.PutCustomerStatusDeferred(CustomerStatus{Source: "sophos"}); err == nil {
			t.Error("PutCustomerStatusDeferred without a customer id returned nil error")
		}
		for _, id := range []int64{999999, in.ID, in.ID} {
			if err := db.CompleteIntentDeferred(IntentCompletion{ID: id, State: IntentFailed}); err != nil {
				t.Fatal(err)
			}
		}
		err = db.Flush(t.Context())
		for _, want := range []string{"intent 999999: no such intent", fmt.Sprintf("intent %d: already failed", in.ID)} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("Flush = %v, want an error saying %q", err, want)
			}
		}
		if open, err := db.OpenIntents(); err != nil || len(open) != 0 {
			t.Errorf("OpenIntents = %+v, %v; want the intent closed by its first completion", open, err)
		}
		if err := db.Flush(t.Context()); err != nil {
			t.Errorf("second Flush = %v, want nil: errors are reported once", err)
		}
		if err := db.CompleteIntentDeferred(IntentCompletion{ID: 424242, State: IntentDone}); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err == nil || !strings.Contains(err.Error(), "intent 424242: no such intent") {
			t.Errorf("Close with a failed deferred completion = %v, want its error", err)
		}
	})
}

// TestGroupCommit_postgresFence: on PostgreSQL a group goes through the
// connection that holds the leadership lock. Without the lock, the intents
// of a group are refused and the rest of it is committed; when that
// connection breaks under a queued group, every caller of it gets the
// error and nothing of it is committed.
func TestGroupCommit_postgresFence(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	db, err := OpenConfig(t.Context(), Config{Driver: DriverPostgres, URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer closeDB(t, db)

	taken, release := pauseCommitter(t, db)
	first := writeConcurrently(map[string]func() ([]Intent, error){"first": putStatus(db, "first")})
	<-taken
	wait := writeConcurrently(map[string]func() ([]Intent, error){
		"open":   openOne(db, "g0"),
		"batch":  openBatch(db, "b0", "b1"),
		"status": putStatus(db, "c1"),
	})
	waitQueued(t, db, 3)
	release()
	if got := first()["first"]; got.err != nil {
		t.Fatal(got.err)
	}
	got := wait()
	for _, what := range []string{"open", "batch"} {
		if !errors.Is(got[what].err, ErrNotLeader) {
			t.Errorf("%s without the leadership lock = %v, want ErrNotLeader", what, got[what].err)
		}
	}
	if got["status"].err != nil {
		t.Errorf("status in a group whose intents were refused = %v, want it committed", got["status"].err)
	}
	if st, err := db.CustomerStatuses(); err != nil || len(st) != 2 {
		t.Errorf("CustomerStatuses = %+v, %v; want first and c1", st, err)
	}

	// Lead, then lose the lock's connection while a group waits.
	l, err := db.TryLead(t.Context(), LeaderInfo{Holder: "a"}, time.Hour)
	if err != nil || l == nil {
		t.Fatalf("TryLead = %v, %v", l, err)
	}
	taken, release = pauseCommitter(t, db)
	first = writeConcurrently(map[string]func() ([]Intent, error){"first": putStatus(db, "first")})
	<-taken
	wait = writeConcurrently(map[string]func() ([]Intent, error){
		"open":   openOne(db, "g1"),
		"batch":  openBatch(db, "b2", "b3"),
		"status": putStatus(db, "c2"),
	})
	waitQueued(t, db, 3)
	if _, err := db.sql.ExecContext(t.Context(), `SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'
		AND objid::bigint = $1 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
		leaderLockKey&0xffffffff); err != nil {
		t.Fatal(err)
	}
	release()
	if got := first()["first"]; got.err == nil {
		t.Error("a status committed through the broken lock connection returned nil error")
	}
	for what, o := range wait() {
		if o.err == nil || !strings.Contains(o.err.Error(), "leadership lock") {
			t.Errorf("%s through the broken lock connection = %v, want an error naming the leadership lock", what, o.err)
		}
	}
	if open, err := db.OpenIntents(); err != nil || len(open) != 0 {
		t.Errorf("OpenIntents = %+v, %v; want none", open, err)
	}
	if _, ok, err := db.CustomerStatus("sophos", "c2"); ok || err != nil {
		t.Errorf("CustomerStatus(c2) = %v, %v; want nothing of the failed group", ok, err)
	}
}

// TestGroupCommit_textPostgresRefuses: a status whose text holds a NUL byte
// or invalid UTF-8 (an error quoting a PSA's answer, a name from the
// export), which PostgreSQL refuses in text, is stored with U+FFFD in their
// place, and does not fail the other writes of its group commit.
func TestGroupCommit_textPostgresRefuses(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		taken, release := pauseCommitter(t, db)
		go func() {
			_ = db.PutCustomerStatus(CustomerStatus{Source: "s", CustomerID: "first", Result: CustomerSucceeded})
		}()
		<-taken
		bad := CustomerStatus{Source: "s", CustomerID: "bad", CustomerName: "Acme\xff", Result: CustomerFailed, Error: "autotask: 500: bad\x00thing"}
		wait := writeConcurrently(map[string]func() ([]Intent, error){
			"status": func() ([]Intent, error) { return nil, db.PutCustomerStatus(bad) },
			"intent": func() ([]Intent, error) {
				in, err := db.OpenIntent(testIntent())
				return []Intent{in}, err
			},
		})
		waitQueued(t, db, 2)
		release()
		for name, o := range wait() {
			if o.err != nil {
				t.Errorf("%s: %v", name, o.err)
			}
		}
		got, ok, err := db.CustomerStatus("s", "bad")
		if err != nil || !ok {
			t.Fatalf("CustomerStatus = %v, %v", ok, err)
		}
		wantName, wantErr := bad.CustomerName, bad.Error
		if d.name == DriverPostgres {
			wantName, wantErr = "Acme\uFFFD", "autotask: 500: bad\uFFFDthing"
		}
		if got.CustomerName != wantName || got.Error != wantErr {
			t.Errorf("stored name %q, error %q; want %q, %q", got.CustomerName, got.Error, wantName, wantErr)
		}
	})
}

// TestPutCustomerStatusBatch_invalidKeyStoresTheOthers: a status with an
// invalid key is named in the error and left out; the batch's other
// statuses are stored.
func TestPutCustomerStatusBatch_invalidKeyStoresTheOthers(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		err := db.PutCustomerStatusBatch(t.Context(), []CustomerStatus{
			{Source: "s", CustomerID: "a", Result: CustomerSucceeded},
			{Source: "s", CustomerID: "b\x00", Result: CustomerSucceeded},
			{Source: "s", CustomerID: "c", Result: CustomerSucceeded},
		})
		if err == nil || !strings.Contains(err.Error(), `status 2 of 3 (customer "b\x00" of "s")`) {
			t.Errorf("PutCustomerStatusBatch = %v; want an error naming status 2", err)
		}
		for _, id := range []string{"a", "c"} {
			if _, ok, err := db.CustomerStatus("s", id); !ok || err != nil {
				t.Errorf("status of %s stored: %v, %v", id, ok, err)
			}
		}
	})
}

// TestLeaderInfo_String_hidesPassword: the active instance's URL, which a
// standby shows to whoever asks (its /-/ready included), never shows a
// password, even one a record of an older version holds.
func TestLeaderInfo_String_hidesPassword(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		info LeaderInfo
		want string
	}{
		{LeaderInfo{Holder: "host-a pid 1"}, "host-a pid 1"},
		{LeaderInfo{Holder: "host-a pid 1", URL: "https://psa-syncd-a:9810"}, "host-a pid 1 (https://psa-syncd-a:9810)"},
		{LeaderInfo{Holder: "host-a pid 1", URL: "https://automation:S3CRET@psa-syncd-a:9810"}, "host-a pid 1 (https://automation:xxxxx@psa-syncd-a:9810)"},
	} {
		if got := tt.info.String(); got != tt.want {
			t.Errorf("LeaderInfo%+v.String() = %q, want %q", tt.info, got, tt.want)
		}
	}
}

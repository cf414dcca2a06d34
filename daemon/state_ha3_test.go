package daemon

import (
	"database/sql"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/state/pgtest"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// TestDaemon_knownOutcomesRecordedWhenOneWasSettledMeanwhile: as
// TestDaemon_syncCommandRecordsKnownOutcomesAtClose, but while the process
// records the outcomes it kept (its one try: the retry time has run out),
// another instance, which took over, settles one of those intents in the
// same moment. The closes were filtered by a read of the open intents and
// then recorded in one all-or-nothing batch: the settled one was refused,
// and the batch with it, so the outcomes of the two others were lost (left
// open, to be settled as after a crash; for Kaseya BMS, by an operator).
// The two others are recorded, once each; the settled one is left as the
// other instance settled it, with no second ledger entry.
func TestDaemon_knownOutcomesRecordedWhenOneWasSettledMeanwhile(t *testing.T) {
	t.Parallel()
	url, err := pgtest.New(t).CreateDatabase(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	cut := &dtCutOnWrite{t: t, url: url}
	front := httptest.NewServer(cut)
	t.Cleanup(front.Close)
	var logs syncBuffer
	e := dtSetup(t, dtOptions{daemonOpts: Options{ShutdownTimeout: time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))},
		state:   fmt.Sprintf("state:\n  driver: postgres\n  url: %q\n  lock_interval: 5s\n", url),
		baseURL: func(s *psatest.Server) string { cut.sim = s; return front.URL + "/ATServicesRest/" }})
	a := e.d
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := a.BecomeActive(t.Context()); err != nil {
		t.Fatal(err)
	}
	if res, err := a.SyncOnce(t.Context(), usage.PassOptions{Trigger: usage.TriggerAPI}); err == nil && res.Run.Result == state.RunSuccess {
		t.Errorf("pass that lost the lock's connection = %+v, want it not to succeed", res.Run)
	}
	if n := cut.posts.Load(); n != 3 {
		t.Fatalf("%d adjustments sent, want the pass's 3", n)
	}

	// The other instance settles the first intent: its row is updated, not
	// yet committed, when this process reads the open intents, and
	// committed while this process's close of it waits for the row.
	other, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	tx, err := other.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	var settled int64
	if err := tx.QueryRowContext(t.Context(), `UPDATE intents SET state = 'done', note = 'settled by the instance that took over'
		WHERE id = (SELECT MIN(id) FROM intents WHERE state = 'open') RETURNING id`).Scan(&settled); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(t.Context(), `INSERT INTO ledger (run_id, system, source, customer_id, contract_id, service_id, qty_before, qty_after, effective_date, at, intent_id)
		SELECT run_id, system, source, customer_id, contract_id, service_id, qty_before, qty_after, effective_date, now(), id FROM intents WHERE id = $1`, settled); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() { defer close(closed); _ = a.Close() }()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var waiting int
		if err := other.QueryRowContext(t.Context(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		select {
		case <-closed:
			t.Fatalf("Close returned before its close of intent %d waited for the other instance's\n%s", settled, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("Close never waited for the intent the other instance settles")
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	<-closed

	b := dtSecondInstance(t, e, time.Now)
	if open, err := b.State().OpenIntents(); err != nil || len(open) != 0 {
		t.Errorf("open intents = %d (%v), want none: the outcomes of the two others were known\n%s", len(open), err, logs.String())
	}
	ledger, err := b.State().Ledger(0)
	if err != nil {
		t.Fatal(err)
	}
	perIntent := map[int64]int{}
	for _, l := range ledger {
		perIntent[l.IntentID]++
	}
	if len(ledger) != 3 || len(perIntent) != 3 {
		t.Errorf("ledger = %d entries for %d intents (%v), want 3, one per write answered", len(ledger), len(perIntent), perIntent)
	}
	if strings.Contains(logs.String(), "closed otherwise meanwhile") {
		t.Errorf("an intent settled as this process knew it ended was logged as closed otherwise:\n%s", logs.String())
	}
}

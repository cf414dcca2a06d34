package state

import (
	"testing"
)

// TestCompleteIntentsStillOpen: of outcomes recorded late, those of intents
// another instance or an operator closed meanwhile are left as they were
// closed (no second ledger entry) and named, and the others are recorded,
// where CompleteIntentBatch refuses them all.
func TestCompleteIntentsStillOpen(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		var ids []int64
		for range 3 {
			in, err := db.OpenIntent(testIntent())
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, in.ID)
		}
		if err := db.CompleteIntent(ids[1], IntentFailed, "resolved by an operator: not posted", t0); err != nil {
			t.Fatal(err)
		}
		cs := []IntentCompletion{
			{ID: ids[0], State: IntentDone, At: t0},
			{ID: ids[1], State: IntentDone, At: t0},
			{ID: ids[2], State: IntentDone, At: t0},
			{ID: 424242, State: IntentDone, At: t0},
		}
		if err := db.CompleteIntentBatch(t.Context(), cs); err == nil {
			t.Fatal("CompleteIntentBatch with a closed intent = nil, want a refusal (the case CompleteIntentsStillOpen is for)")
		}
		closed, err := db.CompleteIntentsStillOpen(t.Context(), cs)
		if err != nil {
			t.Fatalf("CompleteIntentsStillOpen = %v", err)
		}
		if len(closed) != 2 || closed[ids[1]] != IntentFailed || closed[424242] != "" {
			t.Errorf("closed meanwhile = %v, want intent %d failed and 424242 unknown", closed, ids[1])
		}
		if _, ok := closed[424242]; !ok {
			t.Errorf("closed meanwhile = %v, want the unknown intent 424242 named", closed)
		}
		if open, err := db.OpenIntents(); err != nil || len(open) != 0 {
			t.Errorf("open intents = %d (%v), want none", len(open), err)
		}
		ledger, err := db.Ledger(0)
		if err != nil {
			t.Fatal(err)
		}
		if len(ledger) != 2 || ledger[0].IntentID == ids[1] || ledger[1].IntentID == ids[1] {
			t.Errorf("ledger = %+v, want the entries of intents %d and %d only", ledger, ids[0], ids[2])
		}
		if _, err := db.CompleteIntentsStillOpen(t.Context(), []IntentCompletion{{ID: ids[0], State: "posted"}}); err == nil {
			t.Error("CompleteIntentsStillOpen with an invalid state = nil, want an error")
		}
	})
}

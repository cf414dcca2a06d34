package state_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

func ExampleDB_OpenIntent() {
	dir, err := os.MkdirTemp("", "psa-syncd-state")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	db, err := state.Open(dir)
	if err != nil {
		log.Fatal(err)
	}

	run, err := db.BeginRun(state.Run{Trigger: "schedule", Period: "2026-11"})
	if err != nil {
		log.Fatal(err)
	}
	// Record the write before sending it...
	in, err := db.OpenIntent(state.Intent{
		RunID: run.ID, System: psa.SystemAutotask, Source: "sophos", CustomerID: "718b6047",
		ContractID: "29684183", ServiceID: "30000012", Before: 40, After: 42, BeforeKnown: true,
		EffectiveDate: time.Date(2026, time.November, 1, 0, 0, 0, 0, time.UTC),
	})
	if err != nil {
		log.Fatal(err)
	}
	// ...send it to the PSA here, then mark it done, which appends the
	// ledger entry in the same transaction.
	if err := db.CompleteIntent(in.ID, state.IntentDone, "", time.Now()); err != nil {
		log.Fatal(err)
	}

	last, ok, err := db.LastSet("29684183", "30000012")
	if err != nil {
		log.Fatal(err)
	}
	open, err := db.OpenIntents()
	if err != nil {
		log.Fatal(err)
	}
	if err := db.Close(); err != nil {
		log.Fatal(err)
	}
	fmt.Println(ok, last.Before, "->", last.After, "in run", last.RunID)
	fmt.Println("open intents:", len(open))
	// Output:
	// true 40 -> 42 in run 1
	// open intents: 0
}

func ExampleDB_OpenIntentBatch() {
	dir, err := os.MkdirTemp("", "psa-syncd-state")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	db, err := state.Open(dir)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	// Two writes to send: both intents are committed in one transaction
	// before either is sent.
	ins, err := db.OpenIntentBatch(ctx, []state.Intent{
		{System: psa.SystemAutotask, Source: "sophos", CustomerID: "718b6047", ContractID: "29684183", ServiceID: "30000012", After: 42},
		{System: psa.SystemAutotask, Source: "sophos", CustomerID: "718b6047", ContractID: "29684183", ServiceID: "30000013", After: 7},
	})
	if err != nil {
		log.Fatal(err) // nothing may be sent
	}
	// ...send both writes here. Their closes need not wait for a commit
	// of their own: a close lost in a crash leaves the intent open, to be
	// settled by reading the PSA. They join the next commit.
	for _, in := range ins {
		if err := db.CompleteIntentDeferred(state.IntentCompletion{ID: in.ID, State: state.IntentDone}); err != nil {
			log.Fatal(err)
		}
	}
	// The statuses of a pass are one transaction too.
	if err := db.PutCustomerStatusBatch(ctx, []state.CustomerStatus{
		{Source: "sophos", CustomerID: "718b6047", Result: state.CustomerSucceeded, Updated: 2},
		{Source: "sophos", CustomerID: "9c2e11aa", Result: state.CustomerSucceeded},
	}); err != nil {
		log.Fatal(err)
	}
	// At the end of the pass, Flush reports any deferred write that failed.
	if err := db.Flush(ctx); err != nil {
		log.Fatal(err)
	}

	ledger, err := db.Ledger(0)
	if err != nil {
		log.Fatal(err)
	}
	statuses, err := db.CustomerStatuses()
	if err != nil {
		log.Fatal(err)
	}
	if err := db.Close(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("ledger entries:", len(ledger), "statuses:", len(statuses))
	// Output:
	// ledger entries: 2 statuses: 2
}

package state_test

import (
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

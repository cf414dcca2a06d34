// Package state is psa-syncd's embedded state database: the status of each
// customer's last sync, the run history, the intents that guard
// non-idempotent PSA writes, and the append-only ledger of every quantity
// psa-syncd set.
//
// The database is a single bbolt file (FileName) in the state directory.
// Every write is one transaction that is committed and fsynced before the
// method returns, and only one process can hold the file open at a time.
//
// The write protocol that keeps a crash from ever posting a change twice:
//
//	db, err := state.Open("/var/lib/psa-syncd")
//	if err != nil {
//		return err
//	}
//	defer db.Close()
//
//	in, err := db.OpenIntent(state.Intent{
//		RunID: run.ID, System: psa.SystemAutotask, Source: "sophos", CustomerID: "718b6047",
//		ContractID: "29684183", ServiceID: "30000012",
//		Before: 40, After: 42, BeforeKnown: true, EffectiveDate: periodStart,
//	})
//	if err != nil {
//		return err // nothing was sent
//	}
//	_, err = backend.SetQuantity(ctx, psa.SetQuantityRequest{
//		ContractID: "29684183", ServiceID: "30000012", Quantity: 42,
//		Current: current, EffectiveDate: periodStart,
//	})
//	if err != nil {
//		// Only when the PSA certainly rejected the write; a lost response
//		// leaves the intent open for reconciliation.
//		return db.CompleteIntent(in.ID, state.IntentFailed, err.Error(), time.Now())
//	}
//	// Marks the intent done and appends the ledger entry atomically.
//	return db.CompleteIntent(in.ID, state.IntentDone, "", time.Now())
//
// On start-up, OpenIntents lists the writes whose outcome is unknown; the
// daemon settles each one by re-reading the PSA instead of sending it again.
// LastSet returns the quantity psa-syncd last set on a contract line, which
// is the only record of current units for PSAs that cannot be read back.
package state

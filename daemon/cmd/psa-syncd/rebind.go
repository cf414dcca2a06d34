package main

import (
	"context"
	"fmt"
	"time"
)

func cmdRebind(ctx context.Context, e *env, args []string) (rc int) {
	var cf commonFlags
	fs := newFlagSet(e, "rebind", "Record the PSA instance the config connects to as the one whose usage the state\n"+
		"database holds. psa-syncd records the instance (the Autotask tenant, the ConnectWise\n"+
		"login company or the Kaseya BMS tenant, each at its host) at its first pass and refuses\n"+
		"usage passes connected to another, because the ledger and open intents name contracts\n"+
		"and services by id, which another tenant (a sandbox and its production) may share.\n"+
		"Rebind only when the recorded instance is this one under another name; for another\n"+
		"tenant, give it a state database of its own (a new state_dir, or another PostgreSQL\n"+
		"database). The ticket records of the recorded instance become this instance's too.")
	cf.register(fs)
	if rc := parse(fs, e, args); rc >= 0 {
		return rc
	}
	// Rebinding is for a state database that refused a pass: a mistyped
	// state_dir gets no new one, bound while the real one stays as it is.
	if err := requireState(ctx, e, cf.configFile); err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
		return 1
	}
	d, logger, code := cf.setup(e, nil)
	if code >= 0 {
		return code
	}
	defer closeDaemon(d, logger, &rc)
	if err := d.BecomeActive(ctx); err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
		return 1
	}
	old, had, now, err := d.RebindInstance(ctx)
	if err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
		return 1
	}
	if had {
		fmt.Fprintf(e.stdout, "The state database now holds the usage of %s (was %q, recorded %s).\n",
			now, old.Instance, old.BoundAt.Format(time.DateOnly))
	} else {
		fmt.Fprintf(e.stdout, "The state database now holds the usage of %s.\n", now)
	}
	return 0
}

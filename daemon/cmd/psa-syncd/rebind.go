package main

import (
	"context"
	"fmt"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon"
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
		"database). The ticket records of the recorded instance become this instance's too.\n"+
		"It reads only state_dir and the state and psa sections of the config file: of the secrets, the\n"+
		"state's and the PSA's, not the usage source's, the export's or the API's.")
	cf.register(fs)
	if rc := parse(fs, e, args); rc >= 0 {
		return rc
	}
	// Rebinding is for a state database that refused a pass: a mistyped
	// state_dir gets no new one, bound while the real one stays as it is.
	// Only the state and PSA settings are read, the PSA's secrets the only
	// ones besides the state's, so that it runs by hand while psa-syncd is
	// stopped with the PSA's credentials at hand, where the service's
	// other secrets may not be readable.
	h, code := leadByHand(ctx, e, &cf, "rebind", daemon.LoadStatePSA)
	if code != 0 {
		return code
	}
	defer h.release(e, &rc)
	old, had, now, err := h.Rebind(ctx)
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

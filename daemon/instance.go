package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// RebindInstance records the PSA instance psa-syncd is connected to as the
// one whose usage the state database holds, replacing the instance of the
// configured system recorded before (psa-syncd rebind). It is the
// operator's answer to a pass refused with a usage.InstanceMismatchError
// when the recorded instance is this tenant under another name (a base URL
// configured where zone discovery was used before, say); for another
// tenant, a state database of its own is the answer: after a rebind, its
// passes take the recorded ledger, intents and contract checks as its own,
// and so do its ticket passes the ticket records of the instance recorded
// before (state.DB.MoveTicketRecords), which they would otherwise leave
// alone as another PSA's.
// It returns the instance recorded before (had is false when none was)
// and the one recorded now. Only the active instance rebinds.
func (d *Daemon) RebindInstance(ctx context.Context) (old state.PSAInstance, had bool, now state.PSAInstance, err error) {
	d.passMu.Lock()
	defer d.passMu.Unlock()
	if !d.leading.Load() {
		return old, false, now, &StandbyError{Active: d.activeInstance()}
	}
	return rebind(ctx, d.db, d.clients.Load().backend, d.now().UTC(), d.logger)
}

// rebind is RebindInstance's work, by the daemon or by hand (ByHand.Rebind):
// it records the instance be is connected to, bound at now, in db.
func rebind(ctx context.Context, db *state.DB, be psa.Backend, at time.Time, logger *slog.Logger) (old state.PSAInstance, had bool, now state.PSAInstance, err error) {
	instance, err := usage.ConnectedInstance(ctx, be)
	if err != nil {
		return old, false, now, err
	}
	sys := be.System()
	if old, had, err = db.BoundInstance(sys); err != nil {
		return old, false, now, fmt.Errorf("daemon: %w", err)
	}
	now = state.PSAInstance{System: sys, Instance: instance, BoundAt: at}
	if had && old.Instance != instance {
		// The tickets of the instance bound so far are this instance's
		// too. They are moved first: should the binding fail after it,
		// the next rebind finds them moved and binds.
		moved, err := db.MoveTicketRecords(sys, old.Instance, instance)
		if err != nil {
			return old, had, state.PSAInstance{}, fmt.Errorf("daemon: %w", err)
		}
		if moved > 0 {
			logger.Warn("Took the ticket records of the instance the state database was bound to as this instance's", "system", sys,
				"records", moved, "instance", instance, "previous", old.Instance)
		}
	}
	if err := db.PutBoundInstance(now); err != nil {
		return old, had, state.PSAInstance{}, fmt.Errorf("daemon: %w", err)
	}
	logger.Warn("Bound the state database to the PSA instance psa-syncd is connected to", "system", sys, "instance", instance,
		"previous", old.Instance)
	return old, had, now, nil
}

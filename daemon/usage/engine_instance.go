package usage

import (
	"context"
	"fmt"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// InstanceMismatchError is the error of a pass refused because the state
// database records the usage of another instance of the PSA system than
// the one psa-syncd is connected to (another tenant, such as the Autotask
// sandbox the database was used with before production). Its ledger, open
// intents and contract checks name contracts and services by id, which
// the tenants may share: acting on them would compute the other tenant's
// quantities into this one's invoices.
type InstanceMismatchError struct {
	// Bound is the instance the state database records.
	Bound state.PSAInstance
	// Connected is the instance psa-syncd is connected to.
	Connected string
}

func (e *InstanceMismatchError) Error() string {
	return fmt.Sprintf("daemon: the state database holds the usage of %s (recorded %s), but psa-syncd is connected to %s instance %q: "+
		"its ledger, open intents and contract checks are not this instance's, so no usage pass runs; "+
		"give this instance a state database of its own (a new state_dir, or another PostgreSQL database), "+
		"or, if this is the recorded tenant under another name, bind the database to it with psa-syncd rebind",
		e.Bound, e.Bound.BoundAt.Format(time.DateOnly), e.Bound.System, e.Connected)
}

// ConnectedInstance returns the instance of the PSA that be is connected
// to, as its Instance reports it. An Autotask tenant found by zone
// discovery is known only after a first call, which a fresh process has
// not made yet: one cheap read (Ping) makes it.
func ConnectedInstance(ctx context.Context, be psa.Backend) (string, error) {
	if in := be.Instance(); in != "" {
		return in, nil
	}
	sys := be.System()
	if err := be.Ping(ctx); err != nil {
		return "", fmt.Errorf("daemon: finding out which %s instance psa-syncd is connected to: %w", sys, err)
	}
	if in := be.Instance(); in != "" {
		return in, nil
	}
	return "", fmt.Errorf("daemon: the %s backend does not say which instance psa-syncd is connected to", sys)
}

// checkInstance refuses a pass connected to another instance of the PSA
// system than the one whose usage the state database records (an
// *InstanceMismatchError). With bind, for a pass that writes, it records
// the connected instance when none is recorded yet (a new database, or one
// from before instances were recorded: it adopts this one), and the
// tenant's host when an Autotask tenant moved to another zone.
//
// A plan (bind unset) whose PSA cannot be reached checks against the
// export's psa.instance instead, which psa-syncd checked against the
// connection when it loaded the export; with neither known (an offline
// billing-impact report of an export without psa.instance) it is not
// checked: a plan writes nothing.
func (e *Engine) checkInstance(ctx context.Context, doc *export.Document, bind bool) error {
	if e.db == nil {
		return nil
	}
	sys := e.be.System()
	cur, err := ConnectedInstance(ctx, e.be)
	if err != nil {
		if bind {
			return err
		}
		if doc == nil || doc.PSA.System != sys || doc.PSA.Instance == "" {
			e.logger.Warn("Cannot check that the state database holds this PSA instance's usage", "err", err)
			return nil
		}
		cur = doc.PSA.Instance
	}
	bound, ok, err := e.db.BoundInstance(sys)
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	if !ok {
		if !bind {
			return nil
		}
		if bound, err = e.db.BindInstance(state.PSAInstance{System: sys, Instance: cur, BoundAt: e.now().UTC()}); err != nil {
			return fmt.Errorf("daemon: %w", err)
		}
		if export.SameInstance(bound.Instance, cur) {
			e.logger.Info("Recorded the PSA instance whose usage the state database holds", "instance", bound.Instance)
		}
	}
	if !export.SameInstance(bound.Instance, cur) {
		return &InstanceMismatchError{Bound: bound, Connected: cur}
	}
	if rec := export.RecordedInstance(bound.Instance, cur); bind && rec != bound.Instance {
		if err := e.db.PutBoundInstance(state.PSAInstance{System: sys, Instance: rec, BoundAt: e.now().UTC()}); err != nil {
			return fmt.Errorf("daemon: %w", err)
		}
		e.logger.Info("The PSA instance whose usage the state database holds is known under a new name",
			"recorded", bound.Instance, "now", rec)
	}
	return nil
}

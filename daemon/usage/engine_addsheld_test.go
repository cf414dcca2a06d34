package usage

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// hiddenLine answers the reads without one line, as a read through a
// security role that cannot see it, or a cache serving an old page, does.
type hiddenLine struct {
	psa.Backend
	key psa.LineKey
}

func (b *hiddenLine) ReadLines(ctx context.Context, contractIDs []string, asOf time.Time) ([]psa.ContractLine, error) {
	lines, err := b.Backend.ReadLines(ctx, contractIDs, asOf)
	return slices.DeleteFunc(lines, func(l psa.ContractLine) bool {
		return l.ContractID == b.key.ContractID && l.ServiceID == b.key.ServiceID
	}), err
}

// TestEngineSystems_addsHeldOnRestoredState: on a state database restored
// from a copy that lost the last writes (their ledger entries and
// intents), a line the read does not show is not added while the restore
// is unconfirmed (PassOptions.AddsHeld): it may be one psa-syncd added
// after the copy was taken, and adding it again doubles it (a second
// ConnectWise addition; an Autotask adjustment of the whole quantity). The
// line fails with the refusal; the customer's lines the read shows, and
// the other customers', are written. (audit-doubles4, not fixed 4.)
func TestEngineSystems_addsHeldOnRestoredState(t *testing.T) {
	t.Parallel()
	for _, sys := range []psa.System{psa.SystemAutotask, psa.SystemConnectWise} {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, sys)
			h.pol.MaxIncreasePercent = 0
			h.firstPass(3, "cust-a,Acme,CIXA-MSP,40", "cust-a,Acme,MDR,10", "cust-b,Globex,CIXA-MSP,5")

			// The copy psa-syncd restarts on lost those writes, and the
			// read of Acme's Intercept X line does not show it.
			db, err := state.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close() })
			h.db = db
			h.be = &hiddenLine{Backend: h.be, key: psa.LineKey{ContractID: h.contractA, ServiceID: h.svcIntercept}}
			h.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-a,Acme,MDR,12", "cust-b,Globex,CIXA-MSP,7")
			restored := errors.New("daemon: writes are held: the state database is a backup taken at 2026-11-20T02:00:00Z and restored")
			res := h.sync(PassOptions{AddsHeld: restored})

			h.wantUnits(h.contractA, h.svcIntercept, 40)
			if sys == psa.SystemAutotask {
				// Every Autotask adjustment is held too
				// (TestEngineAutotask_adjustmentsHeldOnRestoredState).
				h.wantUnits(h.contractA, h.svcMDR, 10)
				h.wantUnits(h.contractB, h.svcIntercept, 5)
				if res.Run.Updated != 0 || res.Run.Failed != 3 {
					t.Errorf("run = %+v, want every line failed", res.Run)
				}
			} else {
				h.wantUnits(h.contractA, h.svcMDR, 12)
				h.wantUnits(h.contractB, h.svcIntercept, 7)
				if res.Run.Updated != 2 || res.Run.Failed != 1 {
					t.Errorf("run = %+v, want 2 updated and the hidden line failed", res.Run)
				}
			}
			if sys == psa.SystemConnectWise {
				if adds := h.sim.ConnectWise().Additions(mustParse(t, h.contractA)); len(adds) != 2 {
					t.Errorf("Acme's additions = %+v, want its Intercept X and MDR lines, once each", adds)
				}
			}
			if c := sysFindChange(res.Plan, h.svcIntercept); c == nil || c.Action != ActionFailed || !strings.Contains(c.Reason, restored.Error()) ||
				!strings.Contains(c.Reason, "not added until the restore is confirmed") {
				t.Errorf("hidden line's change = %+v, want failed with the refusal", c)
			}
		})
	}
}

// staleLine answers the reads with one line at an older quantity, as a
// cache or proxy serving a page from before psa-syncd's last write does.
type staleLine struct {
	psa.Backend
	key   psa.LineKey
	units int64
}

func (b *staleLine) ReadLines(ctx context.Context, contractIDs []string, asOf time.Time) ([]psa.ContractLine, error) {
	lines, err := b.Backend.ReadLines(ctx, contractIDs, asOf)
	for i, l := range lines {
		if l.ContractID == b.key.ContractID && l.ServiceID == b.key.ServiceID {
			lines[i].Quantity = b.units
		}
	}
	return lines, err
}

// TestEngineAutotask_adjustmentsHeldOnRestoredState: an Autotask write is
// an adjustment by the difference between the wanted quantity and the
// read. On a state database restored from a copy taken before psa-syncd's
// last write (40 to 45), whose ledger's entry in force is the one before
// it (0 to 40), a read from before that write (40, a cache) does not look
// stale (Engine.staleRead compares it with the entry's 0), and the pass
// adjusted the line by +10 onto the 45 it bills: 55 for a usage of 50. No
// Autotask adjustment is made while the restore is unconfirmed
// (PassOptions.AddsHeld): the line fails with the refusal, and so does
// any other Autotask line to adjust, since a copy cannot tell which of its
// reads are stale. (audit-doubles5, not fixed 3.)
func TestEngineAutotask_adjustmentsHeldOnRestoredState(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemAutotask)
	h.pol.MaxIncreasePercent = 0
	h.firstPass(2, "cust-a,Acme,CIXA-MSP,40", "cust-b,Globex,CIXA-MSP,5")
	dir := t.TempDir()
	if err := h.db.Backup(filepath.Join(dir, state.FileName)); err != nil {
		t.Fatal(err)
	}
	h.writeUsage("cust-a,Acme,CIXA-MSP,45", "cust-b,Globex,CIXA-MSP,5")
	if res := h.sync(PassOptions{}); res.Run.Updated != 1 {
		t.Fatalf("second pass = %+v, want Acme's line set to 45", res.Run)
	}

	db, err := state.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	h.db = db
	h.be = &staleLine{Backend: h.be, key: psa.LineKey{ContractID: h.contractA, ServiceID: h.svcIntercept}, units: 40}
	h.writeUsage("cust-a,Acme,CIXA-MSP,50", "cust-b,Globex,CIXA-MSP,7")
	restored := errors.New("daemon: writes are held: the state database is a backup taken at 2026-11-20T02:00:00Z and restored")
	res := h.sync(PassOptions{AddsHeld: restored})

	h.wantUnits(h.contractA, h.svcIntercept, 45)
	h.wantUnits(h.contractB, h.svcIntercept, 5)
	if res.Run.Updated != 0 || res.Run.Failed != 2 {
		t.Errorf("run = %+v, want both adjustments failed", res.Run)
	}
	for _, c := range res.Plan.Changes {
		if c.Action != ActionFailed || !strings.Contains(c.Reason, restored.Error()) || !strings.Contains(c.Reason, "not adjusted until the restore is confirmed") {
			t.Errorf("change = %+v, want failed with the refusal", c)
		}
	}
}

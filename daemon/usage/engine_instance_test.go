package usage

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/backends"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// otherTenant returns a harness for another instance of h's system whose
// records have the same ids (as an Autotask sandbox has those of the
// production tenant it was copied from), sharing h's state database: what
// psa-syncd sees after its config is pointed at another tenant.
func otherTenant(t *testing.T, h *sysHarness) *sysHarness {
	t.Helper()
	other := newSysHarness(t, h.system)
	if other.contractA != h.contractA || other.contractB != h.contractB || other.svcIntercept != h.svcIntercept {
		t.Fatalf("the other tenant's ids differ: contracts %s, %s and service %s, want %s, %s and %s",
			other.contractA, other.contractB, other.svcIntercept, h.contractA, h.contractB, h.svcIntercept)
	}
	if export.SameInstance(other.be.Instance(), h.be.Instance()) {
		t.Fatalf("the other tenant %q is the same instance as %q", other.be.Instance(), h.be.Instance())
	}
	other.db = h.db
	return other
}

// A state database holds one tenant's ledger and intents, matched to
// contracts and services by id. Pointed at another tenant of the same PSA
// system with the same ids (a sandbox, then production), psa-syncd refuses
// its usage passes, dry runs and plans included, and writes nothing: the
// open intent is not settled against the other tenant's lines, and no
// quantity is computed from the other tenant's ledger (for Kaseya BMS the
// current quantities themselves).
func TestEngine_anotherInstanceIsRefused(t *testing.T) {
	t.Parallel()
	for _, sys := range sysSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			sandbox := newSysHarness(t, sys)
			sandbox.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-b,Globex,CIXA-MSP,10")
			sandbox.sync(PassOptions{})
			sandbox.wantUnits(sandbox.contractA, sandbox.svcIntercept, 40)
			// A pass killed mid-write left an intent open.
			if _, err := sandbox.db.OpenIntent(state.Intent{RunID: 99, System: sys, Source: "file", CustomerID: "cust-b",
				ContractID: sandbox.contractB, ServiceID: sandbox.svcMDR, After: 3, EffectiveDate: etPeriodDay,
				Created: etNow.Add(-time.Hour)}); err != nil {
				t.Fatal(err)
			}
			ledger, err := sandbox.db.Ledger(0)
			if err != nil || len(ledger) == 0 {
				t.Fatalf("sandbox ledger = %v, %v; want entries", ledger, err)
			}

			prod := otherTenant(t, sandbox)
			prod.writeUsage("cust-a,Acme,CIXA-MSP,45", "cust-b,Globex,CIXA-MSP,10", "cust-b,Globex,MDR,3")
			prod.sim.ResetRequests()
			wantErr := func(what string, err error) {
				t.Helper()
				var mismatch *InstanceMismatchError
				if !errors.As(err, &mismatch) {
					t.Fatalf("%s: error = %v, want an InstanceMismatchError", what, err)
				}
				msg := err.Error()
				for _, want := range []string{
					string(sys) + ` instance "` + sandbox.be.Instance() + `"`,
					"connected to " + string(sys) + ` instance "` + prod.be.Instance() + `"`,
					"a new state_dir", "psa-syncd rebind",
				} {
					if !strings.Contains(msg, want) {
						t.Errorf("%s: error %q does not say %q", what, msg, want)
					}
				}
			}

			res, err := prod.engine().Sync(t.Context(), prod.doc, PassOptions{})
			wantErr("Sync", err)
			if res == nil || res.Run.Result != state.RunFailure || res.Run.Error != err.Error() {
				t.Errorf("refused run = %+v, want a failure with the error", res)
			}
			if got := testutil.ToFloat64(prod.m.RunsTotal.WithLabelValues(state.RunFailure)); got != 1 {
				t.Errorf("psa_sync_runs_total{result=\"failure\"} = %v, want 1", got)
			}
			_, err = prod.engine().Sync(t.Context(), prod.doc, PassOptions{DryRun: true})
			wantErr("dry run", err)
			_, err = prod.engine().Plan(t.Context(), prod.doc, PassOptions{})
			wantErr("Plan", err)
			_, err = prod.engine().Reconcile(t.Context())
			wantErr("Reconcile", err)

			if n := prod.writes(); n != 0 {
				t.Errorf("%d line writes in the other tenant, want none", n)
			}
			if _, ok := prod.units(prod.contractA, prod.svcIntercept); ok {
				t.Error("the other tenant has a line for contract A")
			}
			if open, err := sandbox.db.OpenIntents(); err != nil || len(open) != 1 {
				t.Errorf("open intents = %+v, %v; want the sandbox's, still open", open, err)
			}
			if after, err := sandbox.db.Ledger(0); err != nil || len(after) != len(ledger) {
				t.Errorf("ledger = %+v, %v; want the sandbox's %d entries", after, err, len(ledger))
			}
			if in, ok, err := sandbox.db.BoundInstance(sys); err != nil || !ok || in.Instance != sandbox.be.Instance() {
				t.Errorf("BoundInstance = %v, %t, %v; want the sandbox's %q", in, ok, err, sandbox.be.Instance())
			}

			// The sandbox itself goes on.
			sandbox.writeUsage("cust-a,Acme,CIXA-MSP,41", "cust-b,Globex,CIXA-MSP,10")
			if _, err := sandbox.engine().Sync(t.Context(), sandbox.doc, PassOptions{}); err != nil {
				t.Errorf("the sandbox's own pass: %v", err)
			}
		})
	}
}

// zoneDiscovered rebuilds h's Autotask backend to find its zone through
// zone discovery, so that it reports its tenant ("ci:1@<host>"), and only
// after a first call.
func zoneDiscovered(t *testing.T, h *sysHarness) {
	t.Helper()
	cfg := h.cfg
	at := *cfg.Autotask
	at.BaseURL, at.ZoneLookupURL = "", h.sim.AutotaskZoneLookupURL()
	cfg.Autotask = &at
	be, err := backends.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if in := be.Instance(); in != "" {
		t.Fatalf("Instance before zone discovery = %q, want none", in)
	}
	h.be, h.cfg = be, cfg
}

// An Autotask tenant moves to another zone now and then: the database of a
// tenant recorded at its old zone host is still its own (the CI decides,
// as export.SameInstance says) and records the new host. The instance of a
// fresh process is found first (zone discovery), never left unchecked:
// another tenant on the same zone host is refused.
func TestEngine_Sync_autotaskTenantByCI(t *testing.T) {
	t.Parallel()
	t.Run("moved zone", func(t *testing.T) {
		t.Parallel()
		h := newSysHarness(t, psa.SystemAutotask)
		zoneDiscovered(t, h)
		if err := h.db.PutBoundInstance(state.PSAInstance{System: psa.SystemAutotask, Instance: "ci:1@webservices2.autotask.net"}); err != nil {
			t.Fatal(err)
		}
		h.writeUsage("cust-a,Acme,CIXA-MSP,40")
		h.sync(PassOptions{})
		h.wantUnits(h.contractA, h.svcIntercept, 40)
		want := "ci:1@" + strings.TrimPrefix(h.sim.URL(), "http://")
		if in, ok, err := h.db.BoundInstance(psa.SystemAutotask); err != nil || !ok || in.Instance != want {
			t.Errorf("BoundInstance = %v, %t, %v; want the tenant at its new host %q", in, ok, err, want)
		}
	})
	t.Run("another tenant at the host", func(t *testing.T) {
		t.Parallel()
		h := newSysHarness(t, psa.SystemAutotask)
		zoneDiscovered(t, h)
		other := "ci:2@" + strings.TrimPrefix(h.sim.URL(), "http://")
		if err := h.db.PutBoundInstance(state.PSAInstance{System: psa.SystemAutotask, Instance: other}); err != nil {
			t.Fatal(err)
		}
		h.writeUsage("cust-a,Acme,CIXA-MSP,40")
		_, err := h.engine().Sync(t.Context(), h.doc, PassOptions{})
		var mismatch *InstanceMismatchError
		if !errors.As(err, &mismatch) || mismatch.Connected != "ci:1@"+strings.TrimPrefix(h.sim.URL(), "http://") {
			t.Fatalf("Sync error = %v, want an InstanceMismatchError for tenant ci:1", err)
		}
		if n := h.writes(); n != 0 {
			t.Errorf("%d line writes, want none", n)
		}
	})
}

// A database from before instances were recorded has a ledger but no
// instance: the first pass that writes adopts the instance it is connected
// to and uses the ledger (for Kaseya BMS, the current quantities); plans
// and dry runs record nothing. From then on another tenant is refused.
func TestEngine_Sync_oldDatabaseAdoptsInstance(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemKaseyaBMS)
	in, err := h.db.OpenIntent(state.Intent{RunID: 1, System: psa.SystemKaseyaBMS, Source: "file", CustomerID: "cust-a",
		ContractID: h.contractA, ServiceID: h.svcIntercept, After: 40, EffectiveDate: etPeriodDay, Created: etNow.Add(-24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.db.CompleteIntent(in.ID, state.IntentDone, "", etNow.Add(-24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	h.writeUsage("cust-a,Acme,CIXA-MSP,45", "cust-b,Globex,CIXA-MSP,10")

	h.plan()
	h.sync(PassOptions{DryRun: true})
	if got, ok, err := h.db.BoundInstance(psa.SystemKaseyaBMS); err != nil || ok {
		t.Fatalf("BoundInstance after a plan and a dry run = %v, %t, %v; want none", got, ok, err)
	}

	res := h.sync(PassOptions{})
	c := sysFindChange(res.Plan, h.svcIntercept)
	if c == nil || !c.CurrentKnown || c.Current != 40 || c.Desired != 45 {
		t.Errorf("change = %+v, want 40 (from the ledger) -> 45", c)
	}
	if got, ok, err := h.db.BoundInstance(psa.SystemKaseyaBMS); err != nil || !ok || got.Instance != h.be.Instance() {
		t.Errorf("BoundInstance = %v, %t, %v; want the adopted %q", got, ok, err, h.be.Instance())
	}
	prod := otherTenant(t, h)
	prod.writeUsage("cust-a,Acme,CIXA-MSP,45")
	var mismatch *InstanceMismatchError
	if _, err := prod.engine().Plan(t.Context(), prod.doc, PassOptions{}); !errors.As(err, &mismatch) {
		t.Errorf("Plan of another tenant: error = %v, want an InstanceMismatchError", err)
	}
}

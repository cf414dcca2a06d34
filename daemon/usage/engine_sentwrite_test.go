package usage

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// TestEngineSystems_writeSentWhenThePassStopsFinishes: the pass is stopped
// (the shutdown timeout, a lost leadership lock) while a line write is at
// the PSA. Only a Kaseya BMS post was let finish: an Autotask adjustment or
// a ConnectWise addition was cut off, its intent left open although the
// PSA applied it, for the next pass (of another instance, after a lost
// lock) to re-read. Each PSA's write sent is now let finish and its outcome
// recorded; no write starts after the stop.
func TestEngineSystems_writeSentWhenThePassStopsFinishes(t *testing.T) {
	t.Parallel()
	for _, system := range []psa.System{psa.SystemAutotask, psa.SystemConnectWise, psa.SystemKaseyaBMS} {
		t.Run(string(system), func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, system)
			h.pol.WriteConcurrency = 1
			h.writeUsage("cust-a,Acme,CIXA-MSP,42", "cust-b,Globex,CIXA-MSP,10")
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			// The pass stops once the PSA has read the first write whole,
			// before it answers.
			fault := psatest.Fault{Method: http.MethodPost, Latency: 300 * time.Millisecond, Times: 1, Received: cancel}
			switch system {
			case psa.SystemAutotask:
				fault.Path = etAdjustPath
			case psa.SystemConnectWise:
				base, err := url.Parse(h.sim.ConnectWiseBaseURL())
				if err != nil {
					t.Fatal(err)
				}
				fault.Path = base.Path + "finance/agreements/*"
			default:
				fault.Path = bmsServicesPath
			}
			h.sim.AddFault(fault)
			_, _ = h.engine().Sync(ctx, h.doc, PassOptions{})
			if n := h.writes(); n != 1 {
				t.Errorf("%d line writes, want 1: none after the pass was stopped", n)
			}
			if open, _ := h.db.OpenIntents(); len(open) != 0 {
				t.Errorf("open intents = %+v, want none: the write sent was let finish and its outcome recorded", open)
			}
			written := 0
			for c, want := range map[string]int64{h.contractA: 42, h.contractB: 10} {
				u, ok := h.units(c, h.svcIntercept)
				if !ok || u != want {
					continue
				}
				written++
				if le, ok, _ := h.db.LastSet(c, h.svcIntercept); !ok || le.After != want {
					t.Errorf("LastSet of contract %s = %+v, %t; want the %d units written recorded", c, le, ok, want)
				}
			}
			if written != 1 {
				t.Errorf("%d lines written, want the one under way", written)
			}
		})
	}
}

package state

import (
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// TestLedger_sourceLinesInForce: SourceLinesInForce gives the lines whose
// entry in force before the time (SetBefore's) is the source's, on the
// system, above 0: not a line psa-syncd set to 0 since, not one whose
// latest entry is another source's or system's, not one changed only from
// that date on; a line of a customer no longer mapped is named like any
// other.
func TestLedger_sourceLinesInForce(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		day := func(m time.Month, d int) time.Time { return time.Date(2026, m, d, 0, 0, 0, 0, time.UTC) }
		for i, s := range []struct {
			source, customer, contract, service string
			system                              psa.System
			before, after                       int64
			eff                                 time.Time
		}{
			{"sophos", "a", "800", "700", psa.SystemAutotask, 0, 40, day(time.October, 1)},
			{"sophos", "a", "800", "700", psa.SystemAutotask, 40, 44, day(time.November, 1)},
			{"sophos", "a", "800", "701", psa.SystemAutotask, 0, 3, day(time.October, 1)},
			{"sophos", "a", "800", "701", psa.SystemAutotask, 3, 0, day(time.November, 1)},
			{"sophos", "b", "801", "700", psa.SystemAutotask, 0, 7, day(time.October, 1)},
			{"huntress", "b", "801", "700", psa.SystemAutotask, 7, 9, day(time.November, 1)},
			{"sophos", "c", "802", "700", psa.SystemAutotask, 0, 5, day(time.December, 1)},
			{"sophos", "d", "803", "700", psa.SystemConnectWise, 0, 6, day(time.October, 1)},
			{"sophos", "e", "804", "702", psa.SystemAutotask, 0, 2, day(time.October, 1)},
		} {
			req := testIntent()
			req.Source, req.CustomerID, req.System = s.source, s.customer, s.system
			req.ContractID, req.ServiceID, req.Before, req.After, req.EffectiveDate = s.contract, s.service, s.before, s.after, s.eff
			in, err := db.OpenIntent(req)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.CompleteIntent(in.ID, IntentDone, "", t0.Add(time.Duration(i)*time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
		got, err := db.SourceLinesInForce(psa.SystemAutotask, "sophos", day(time.November, 2))
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, e := range got {
			keys = append(keys, e.CustomerID+"/"+e.ContractID+"/"+e.ServiceID)
		}
		if len(got) != 2 || keys[0] != "a/800/700" || got[0].After != 44 || keys[1] != "e/804/702" || got[1].After != 2 {
			t.Errorf("SourceLinesInForce = %v (%+v), want a/800/700 at 44 and e/804/702 at 2", keys, got)
		}
		if _, err := db.SourceLinesInForce(psa.SystemAutotask, "sophos", time.Time{}); err == nil {
			t.Error("SourceLinesInForce with no time: no error")
		}
	})
}

package state

import (
	"maps"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

func TestFailingContracts_putAndRead(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		if got, err := db.FailingContracts(psa.SystemAutotask); err != nil || len(got) != 0 {
			t.Fatalf("FailingContracts of a new database = %v, %v; want none", got, err)
		}
		at := map[string]bool{"29684005": false, "29684006": true}
		if err := db.PutFailingContracts(psa.SystemAutotask, at); err != nil {
			t.Fatal(err)
		}
		if err := db.PutFailingContracts(psa.SystemConnectWise, map[string]bool{"805": true}); err != nil {
			t.Fatal(err)
		}
		if got, err := db.FailingContracts(psa.SystemAutotask); err != nil || !maps.Equal(got, at) {
			t.Errorf("FailingContracts(autotask) = %v, %v; want %v (not ConnectWise's)", got, err, at)
		}
		// Replaced, then emptied.
		if err := db.PutFailingContracts(psa.SystemAutotask, map[string]bool{"29684006": true}); err != nil {
			t.Fatal(err)
		}
		if got, err := db.FailingContracts(psa.SystemAutotask); err != nil || !maps.Equal(got, map[string]bool{"29684006": true}) {
			t.Errorf("FailingContracts(autotask) after the replacement = %v, %v", got, err)
		}
		if err := db.PutFailingContracts(psa.SystemAutotask, nil); err != nil {
			t.Fatal(err)
		}
		if got, err := db.FailingContracts(psa.SystemAutotask); err != nil || len(got) != 0 {
			t.Errorf("FailingContracts(autotask) after emptying = %v, %v; want none", got, err)
		}
		if got, err := db.FailingContracts(psa.SystemConnectWise); err != nil || !got["805"] {
			t.Errorf("FailingContracts(connectwise) = %v, %v; want 805 kept", got, err)
		}
		// The contracts whose reads fail are kept apart from those whose
		// writes do.
		if err := db.PutFailingReads(psa.SystemConnectWise, map[string]bool{"806": true}); err != nil {
			t.Fatal(err)
		}
		if got, err := db.FailingReads(psa.SystemConnectWise); err != nil || !maps.Equal(got, map[string]bool{"806": true}) {
			t.Errorf("FailingReads(connectwise) = %v, %v; want 806", got, err)
		}
		if got, err := db.FailingContracts(psa.SystemConnectWise); err != nil || !maps.Equal(got, map[string]bool{"805": true}) {
			t.Errorf("FailingContracts(connectwise) after PutFailingReads = %v, %v; want 805 alone", got, err)
		}
	})
}

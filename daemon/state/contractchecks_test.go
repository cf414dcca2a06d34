package state

import (
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

func TestContractChecks_putAndRead(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		var checks []ContractCheck
		var ids []string
		// More contracts than one query names.
		for i := range contractCheckChunk + 20 {
			id := strconv.Itoa(1000 + i)
			ids = append(ids, id)
			checks = append(checks, ContractCheck{System: psa.SystemKaseyaBMS, ContractID: id, CompanyID: strconv.Itoa(i),
				Status: "Active", Type: "Recurring Services", Active: true, Recurring: true, CheckedAt: t0})
		}
		other := ContractCheck{System: psa.SystemAutotask, ContractID: "1000", CompanyID: "7", CheckedAt: t0}
		if err := db.PutContractChecks(append(checks, other)); err != nil {
			t.Fatal(err)
		}
		got, err := db.ContractChecks(psa.SystemKaseyaBMS, append(ids, "999"))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(checks) {
			t.Fatalf("ContractChecks returned %d checks, want %d (not the other system's, not the unknown contract's)", len(got), len(checks))
		}
		if last := checks[len(checks)-1]; !cmp.Equal(got[last.ContractID], last) {
			t.Errorf("check of %s = %+v, want %+v", last.ContractID, got[last.ContractID], last)
		}

		// A check replaces the one before of its contract.
		again := ContractCheck{System: psa.SystemKaseyaBMS, ContractID: "1000", CompanyID: "8", Status: "Inactive", Type: "Recurring Services",
			Recurring: true, CheckedAt: t0.Add(time.Hour)}
		if err := db.PutContractChecks([]ContractCheck{again}); err != nil {
			t.Fatal(err)
		}
		got, err = db.ContractChecks(psa.SystemKaseyaBMS, []string{"1000"})
		if err != nil || !cmp.Equal(got, map[string]ContractCheck{"1000": again}) {
			t.Errorf("ContractChecks after the second check = %+v, %v; want %+v", got, err, again)
		}
		got, err = db.ContractChecks(psa.SystemAutotask, []string{"1000"})
		if err != nil || !cmp.Equal(got["1000"], other) {
			t.Errorf("the other system's check = %+v, %v; want %+v", got["1000"], err, other)
		}
	})
}

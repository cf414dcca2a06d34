package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon"
	"github.com/psa-sync/terraform-provider-psa/daemon/source"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
)

// TestWriteResultJSON checks that sync -json, which streams the plan's
// changes, writes byte for byte what encoding the whole result with
// json.Encoder (SetIndent("", "  ")) wrote before, with and without a plan.
func TestWriteResultJSON(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 30, 22, 0, 0, 0, time.UTC)
	eff := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	acme := &usage.ChangeCustomer{Source: "file", CustomerID: "acme", CustomerName: "Acme <&>", ContractID: "1"}
	res := &usage.Result{
		Run: state.Run{ID: 7, Trigger: usage.TriggerCLI, Started: at, Finished: at.Add(time.Second), Result: state.RunPartial,
			Error: "1 of 2 customers failed", Updated: 1, Unchanged: 1, Failed: 1, Period: "2026-11", Customers: 2},
		Customers: []state.CustomerStatus{
			{Source: "file", CustomerID: "acme", CustomerName: "Acme <&>", ContractID: "1", UsageSync: true, Result: state.CustomerSucceeded,
				LastAttempt: at, LastSuccess: at, RunID: "7", Updated: 1, Unchanged: 1},
			{Source: "file", CustomerID: "globex", ContractID: "2", UsageSync: true, Result: state.CustomerFailed, LastAttempt: at, RunID: "7",
				Failed: 1, Error: "contract 2 not found", Hint: "check contract_id"},
		},
		Plan: &usage.Plan{Period: source.Period{Year: 2026, Month: 11}, EffectiveDate: eff, ComputedAt: at, Customers: 2,
			Changes: []usage.Change{
				{ChangeCustomer: acme, ChangeService: &usage.ChangeService{ServiceID: "30", Products: []string{"P1", "P2"}},
					Current: 3, CurrentKnown: true, Desired: 5, EffectiveDate: eff, Action: usage.ActionUpdate, Reason: "usage 5 (P1 3 + P2 2)"},
				{ChangeCustomer: acme, ChangeService: &usage.ChangeService{ServiceID: "31", Products: []string{"P3"}},
					Current: 1, CurrentKnown: true, Desired: 1, EffectiveDate: eff, Action: usage.ActionUnchanged, Reason: "usage 1 (P3 1)"},
			},
			Unmapped: usage.Unmapped{Customers: []usage.UnmappedCustomer{}, Products: []usage.UnmappedProduct{}, Unassigned: []source.Record{}},
			Problems: []source.Problem{{Where: "usage.csv:4", Err: errors.New("product is missing")}},
			Failures: []usage.Failure{{Source: "file", CustomerID: "globex", ContractID: "2", Error: "contract 2 not found"}},
		},
	}
	noPlan := *res
	noPlan.Plan = nil
	noCustomers := noPlan
	noCustomers.Customers = nil
	for name, r := range map[string]*usage.Result{"plan": res, "no plan": &noPlan, "no customers": &noCustomers} {
		customers := make([]statusRow, 0, len(r.Customers))
		for _, cs := range r.Customers {
			customers = append(customers, newStatusRow(cs))
		}
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"run": daemon.NewRunView(r.Run), "customers": customers, "plan": r.Plan}); err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		if err := writeResultJSON(&got, r); err != nil {
			t.Fatalf("%s: writeResultJSON: %v", name, err)
		}
		if got.String() != want.String() {
			t.Errorf("%s: writeResultJSON wrote\n%s\nwant\n%s", name, got.String(), want.String())
		}
	}
}

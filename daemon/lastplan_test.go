package daemon

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
)

// TestStoredPlanJSON checks that the last plan survives the state
// database's snapshot compressed, and that a snapshot written before
// compression (the plan as JSON) still restores.
func TestStoredPlanJSON(t *testing.T) {
	t.Parallel()
	eff := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	p := &usage.Plan{Period: source.Period{Year: 2026, Month: 11}, EffectiveDate: eff, ComputedAt: eff, Customers: 1, RunID: 3,
		Changes: []usage.Change{{ChangeCustomer: &usage.ChangeCustomer{Source: "file", CustomerID: "acme", ContractID: "1"},
			ChangeService: &usage.ChangeService{ServiceID: "2", Products: []string{"P"}},
			Current:       1, CurrentKnown: true, Desired: 2, EffectiveDate: eff, Action: usage.ActionUpdate, Reason: "usage 2 (P 2)"}},
		Unmapped: usage.Unmapped{Customers: []usage.UnmappedCustomer{}, Products: []usage.UnmappedProduct{}, Unassigned: []source.Record{}},
	}
	want := storedPlan{Customer: "acme", Plan: p}
	data, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"plan_gzip":`) || strings.Contains(string(data), "usage 2") {
		t.Errorf("stored plan is not compressed: %s", data)
	}
	old, err := json.Marshal(map[string]any{"customer": "acme", "plan": p})
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"compressed": data, "before compression": old} {
		var got storedPlan
		if err := json.Unmarshal(data, &got); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: restored %+v, want %+v", name, got, want)
		}
	}
	var none storedPlan
	if err := json.Unmarshal([]byte(`{"customer":"","plan":null}`), &none); err != nil || none.Plan != nil {
		t.Errorf("restoring no plan: %+v, %v", none, err)
	}
}

// TestStoredPlanJSON_parts checks that a large plan is compressed in parts,
// one gzip member per core, and restores whole from them.
func TestStoredPlanJSON_parts(t *testing.T) {
	t.Parallel()
	eff := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	p := &usage.Plan{Period: source.Period{Year: 2026, Month: 11}, EffectiveDate: eff, ComputedAt: eff, Customers: 2 * planPartChanges,
		Unmapped: usage.Unmapped{Customers: []usage.UnmappedCustomer{}, Products: []usage.UnmappedProduct{}, Unassigned: []source.Record{}}}
	svc := &usage.ChangeService{ServiceID: "2", Products: []string{"P"}}
	for i := range 2 * planPartChanges {
		p.Changes = append(p.Changes, usage.Change{ChangeCustomer: &usage.ChangeCustomer{Source: "file", CustomerID: fmt.Sprintf("c%05d", i), ContractID: fmt.Sprint(i)},
			ChangeService: svc, Current: int64(i), CurrentKnown: true, Desired: int64(i), EffectiveDate: eff, Action: usage.ActionUnchanged, Reason: fmt.Sprintf("usage %d (P %d)", i, i)})
	}
	want := storedPlan{Plan: p}
	data, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	var raw storedPlanJSON
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	members := 0
	br := bufio.NewReader(bytes.NewReader(raw.PlanGzip))
	zr, err := gzip.NewReader(br)
	for err == nil {
		zr.Multistream(false)
		if _, err = io.Copy(io.Discard, zr); err != nil {
			t.Fatal(err)
		}
		members++
		err = zr.Reset(br)
	}
	if err != io.EOF {
		t.Fatal(err)
	}
	if wantMembers := min(runtime.GOMAXPROCS(0), 2); members != wantMembers {
		t.Errorf("the stored plan has %d gzip members, want %d (one per core)", members, wantMembers)
	}
	var got storedPlan
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("restored plan differs: %d changes, want %d", len(got.Plan.Changes), len(p.Changes))
	}
}

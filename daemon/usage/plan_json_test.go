package usage

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
)

// TestPlanWriteJSON checks that the streamed encoding is byte for byte what
// json.MarshalIndent writes, for plans with many, one, no and nil changes.
func TestPlanWriteJSON(t *testing.T) {
	t.Parallel()
	eff := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	change := func(id string, action string) Change {
		return Change{ChangeCustomer: &ChangeCustomer{Source: "file", CustomerID: id, CustomerName: "Acme <&> \"Co\"", CompanyID: "174", ContractID: "29684183"},
			ChangeService: &ChangeService{ServiceID: "30000012", ServiceName: "Intercept X", Products: []string{"CIXA-MSP", "CIXA-SRV"}}, Current: 40, CurrentKnown: true,
			Desired: 42, EffectiveDate: eff, Action: action, Reason: "usage 42 (CIXA-MSP 40 + CIXA-SRV 2)\nchanges: null"}
	}
	full := Plan{
		Period: source.Period{Year: 2026, Month: 11}, EffectiveDate: eff, ComputedAt: eff.Add(time.Hour), Customers: 3, RunID: 7,
		Changes: []Change{change("a", ActionUpdate), change("b", ActionUnchanged), {ChangeCustomer: &ChangeCustomer{Source: "file", CustomerID: "c"}, ChangeService: &ChangeService{}}},
		Unmapped: Unmapped{Customers: []UnmappedCustomer{{CustomerID: "x", Products: []string{"P"}, Quantity: 1}}, Products: []UnmappedProduct{},
			Unassigned: []source.Record{{Product: "P", Quantity: 3, Where: "usage.csv:4"}}},
		Problems: []source.Problem{{Where: "usage.csv:9", Err: errors.New(`quantity "x" is not a whole number`)}},
		Failures: []Failure{{Source: "file", CustomerID: "d", ContractID: "1", Error: "contract 1 not found", Hint: "map it"}},
	}
	one := full
	one.Changes = full.Changes[:1]
	empty := full
	empty.Changes = []Change{}
	none := Plan{}
	for name, p := range map[string]*Plan{"full": &full, "one": &one, "empty": &empty, "nil": &none} {
		for _, prefix := range []string{"", "  "} {
			want, err := json.MarshalIndent(p, prefix, "  ")
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			if err := p.WriteJSON(&got, prefix, "  "); err != nil {
				t.Fatalf("%s: WriteJSON: %v", name, err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("%s, prefix %q: WriteJSON wrote\n%s\nwant\n%s", name, prefix, got.Bytes(), want)
			}
		}
	}
}

// TestChangeJSON checks that a Change, whose customer and service fields
// are shared structs, encodes as the flat object it always was (same keys,
// same order) and decodes back.
func TestChangeJSON(t *testing.T) {
	t.Parallel()
	eff := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	c := Change{ChangeCustomer: &ChangeCustomer{Source: "file", CustomerID: "a", CustomerName: "Acme", CompanyID: "174", ContractID: "29684183"},
		ChangeService: &ChangeService{ServiceID: "30000012", ServiceName: "Intercept X", Products: []string{"CIXA-MSP"}},
		Current:       40, CurrentKnown: true, Desired: 42, EffectiveDate: eff, Action: ActionUpdate, Reason: "usage 42 (CIXA-MSP 42)"}
	want := `{"source":"file","customer_id":"a","customer_name":"Acme","company_id":"174","contract_id":"29684183",` +
		`"service_id":"30000012","service_name":"Intercept X","products":["CIXA-MSP"],"current":40,"current_known":true,` +
		`"desired":42,"effective_date":"2026-11-01T00:00:00Z","action":"update","reason":"usage 42 (CIXA-MSP 42)"}`
	got, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("Change encodes as\n%s\nwant\n%s", got, want)
	}
	var back Change
	if err := json.Unmarshal([]byte(want), &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, c) {
		t.Errorf("decoded %+v, want %+v", back, c)
	}
	// The names left out when empty stay left out.
	c.CustomerName, c.ServiceName = "", ""
	if got, _ := json.Marshal(c); bytes.Contains(got, []byte("_name")) {
		t.Errorf("Change without names encodes as %s", got)
	}
}

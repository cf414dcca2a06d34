package usage

import (
	"bytes"
	"encoding/json"
	"errors"
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
		return Change{Source: "file", CustomerID: id, CustomerName: "Acme <&> \"Co\"", CompanyID: "174", ContractID: "29684183",
			ServiceID: "30000012", ServiceName: "Intercept X", Products: []string{"CIXA-MSP", "CIXA-SRV"}, Current: 40, CurrentKnown: true,
			Desired: 42, EffectiveDate: eff, Action: action, Reason: "usage 42 (CIXA-MSP 40 + CIXA-SRV 2)\nchanges: null"}
	}
	full := Plan{
		Period: source.Period{Year: 2026, Month: 11}, EffectiveDate: eff, ComputedAt: eff.Add(time.Hour), Customers: 3, RunID: 7,
		Changes: []Change{change("a", ActionUpdate), change("b", ActionUnchanged), {Source: "file", CustomerID: "c"}},
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

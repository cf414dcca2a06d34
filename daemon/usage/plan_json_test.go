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

// TestAppendChange holds appendChange to json.MarshalIndent, for changes
// with every field set (filled by reflection, so that a field added to
// Change and not to appendChange fails here), with the optional ones
// empty, and with strings that encoding/json escapes.
func TestAppendChange(t *testing.T) {
	t.Parallel()
	var full Change
	fillChange(t, reflect.ValueOf(&full).Elem(), new(int))
	escaped := full
	cu, sv := *full.ChangeCustomer, *full.ChangeService
	escaped.ChangeCustomer, escaped.ChangeService = &cu, &sv
	escaped.CustomerName = "Acme <&> \"Co\"\t\\ \u2028 é \xff"
	escaped.Reason = "line\nbreak \x00"
	escaped.Products = []string{"é"}
	sparse := Change{ChangeCustomer: &ChangeCustomer{Source: "file"}, ChangeService: &ChangeService{Products: []string{}}}
	for name, c := range map[string]Change{"full": full, "escaped": escaped, "sparse": sparse, "zero": {}} {
		for _, prefix := range []string{"", "\t  "} {
			want, err := json.MarshalIndent(&c, prefix, "  ")
			if err != nil {
				t.Fatal(err)
			}
			got, err := appendChange([]byte("x"), &c, prefix, "  ")
			if err != nil || string(got) != "x"+string(want) {
				t.Errorf("%s, prefix %q: appendChange = %v\n%s\nwant\n%s", name, prefix, err, got, want)
			}
		}
	}
	bad := Change{EffectiveDate: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
	_, want := json.MarshalIndent(&bad, "", "  ")
	if _, err := appendChange(nil, &bad, "", "  "); err == nil || want == nil || err.Error() != want.Error() {
		t.Errorf("appendChange of a date json cannot encode: error %v, want %v", err, want)
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

// fillChange sets every field of v, a Change or one of the structs it
// embeds, to a value of its own: strings to their field's name, numbers to
// distinct negatives, slices to three products and times to one with a
// zone, so that a field appendChange leaves out shows.
func fillChange(t *testing.T, v reflect.Value, n *int) {
	t.Helper()
	for i := range v.NumField() {
		f := v.Field(i)
		if !f.CanSet() {
			continue
		}
		*n++
		switch f.Kind() {
		case reflect.String:
			f.SetString(v.Type().Field(i).Name)
		case reflect.Int64:
			f.SetInt(int64(-7 * *n))
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Slice:
			f.Set(reflect.ValueOf([]string{"P1", "P2", "P3"}))
		case reflect.Pointer:
			f.Set(reflect.New(f.Type().Elem()))
			fillChange(t, f.Elem(), n)
		case reflect.Struct:
			f.Set(reflect.ValueOf(time.Date(2026, 11, 1, 0, 0, 0, 5, time.FixedZone("", 3600))))
		default:
			t.Fatalf("Change.%s is a %s, which this test does not fill: extend it and appendChange", v.Type().Field(i).Name, f.Kind())
		}
	}
}

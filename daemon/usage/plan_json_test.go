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
	posted := change("e", ActionHeld)
	posted.posted = true
	full := Plan{
		Period: source.Period{Year: 2026, Month: 11}, EffectiveDate: eff, ComputedAt: eff.Add(time.Hour), Customers: 3, RunID: 7,
		Changes: []Change{change("a", ActionUpdate), change("b", ActionUnchanged), {ChangeCustomer: &ChangeCustomer{Source: "file", CustomerID: "c"}, ChangeService: &ChangeService{}},
			change("d", ActionHeld), posted},
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
	held := full
	held.Action = ActionHeld
	approval := held
	approval.laterChange, approval.laterWrite, approval.staleApproval, approval.posted = false, false, false, false
	for name, c := range map[string]Change{"full": full, "escaped": escaped, "sparse": sparse, "zero": {}, "held": held, "held for approval": approval} {
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
	_, want := json.MarshalIndent(bad, "", "  ")
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

// TestChangeJSON_hold checks that a held change says in its JSON why it is
// held ("hold", after "reason"), as the stored plan's columns do: the
// decrease guard (approval, or an approval of other units), a posted
// period, a later change in the month or a later write, none of which an
// approval releases; that a change that is not held has no hold, whatever
// held it before; and that the hold decodes back, with what Approvable
// says, and a kind this version does not know as approvable.
func TestChangeJSON_hold(t *testing.T) {
	t.Parallel()
	eff := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	base := Change{ChangeCustomer: &ChangeCustomer{Source: "file", CustomerID: "a", CompanyID: "174", ContractID: "29684183"},
		ChangeService: &ChangeService{ServiceID: "30000012", Products: []string{"CIXA-MSP"}},
		Current:       40, CurrentKnown: true, Desired: 4, EffectiveDate: eff, Action: ActionHeld, Reason: "usage 4"}
	const head = `{"source":"file","customer_id":"a","company_id":"174","contract_id":"29684183","service_id":"30000012","products":["CIXA-MSP"],` +
		`"current":40,"current_known":true,"desired":4,"effective_date":"2026-11-01T00:00:00Z",`
	for _, tt := range []struct {
		kind       string
		set        func(*Change)
		approvable bool
	}{
		{HoldApproval, func(*Change) {}, true},
		{HoldStaleApproval, func(c *Change) { c.staleApproval = true }, true},
		{HoldPosted, func(c *Change) { c.posted = true }, false},
		{HoldLaterChange, func(c *Change) { c.laterChange = true }, false},
		{HoldLaterWrite, func(c *Change) { c.laterWrite = true }, false},
		{HoldVanished, func(c *Change) { c.vanished = true }, true},
		{HoldStaleRead, func(c *Change) { c.staleRead = true }, true},
		{HoldMoved, func(c *Change) { c.moved = true }, true},
		{HoldPreviousService, func(c *Change) { c.repointed = true }, true},
		{HoldSurge, func(c *Change) { c.surge = true }, true},
	} {
		c := base
		tt.set(&c)
		want := head + `"action":"held","reason":"usage 4","hold":"` + tt.kind + `"}`
		got, err := json.Marshal(c)
		if err != nil || string(got) != want {
			t.Errorf("%s: Change encodes as\n%s (%v)\nwant\n%s", tt.kind, got, err, want)
		}
		var back Change
		if err := json.Unmarshal([]byte(want), &back); err != nil || !reflect.DeepEqual(back, c) || back.Approvable() != tt.approvable {
			t.Errorf("%s: decoded %+v (%v), Approvable %t; want %+v, Approvable %t", tt.kind, back, err, back.Approvable(), c, tt.approvable)
		}

		// A change that is not held (it failed after the hold) has none.
		c.Action, c.Reason = ActionFailed, "boom"
		if got, _ := json.Marshal(c); string(got) != head+`"action":"failed","reason":"boom"}` {
			t.Errorf("%s, then failed: Change encodes as %s, want no hold", tt.kind, got)
		}
	}
	var back Change
	if err := json.Unmarshal([]byte(head+`"action":"held","reason":"usage 4","hold":"next_kind"}`), &back); err != nil || !back.Approvable() {
		t.Errorf("a hold of an unknown kind: decoded %+v (%v), Approvable %t; want it read as approvable", back, err, back.Approvable())
	}
}

package source_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
	_ "time/tzdata" // Europe/Rome without the system zone database

	"github.com/google/go-cmp/cmp"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
)

func TestPeriod(t *testing.T) {
	t.Parallel()
	rome, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		t.Fatal(err)
	}
	p := source.PeriodOf(time.Date(2026, 12, 31, 23, 30, 0, 0, rome))
	if p != (source.Period{Year: 2026, Month: time.December}) || p.String() != "2026-12" {
		t.Errorf("PeriodOf = %v (%s)", p, p)
	}
	if got := p.Next(); got.String() != "2027-01" {
		t.Errorf("Next = %s", got)
	}
	if got := (source.Period{Year: 2026, Month: time.January}).Prev(); got.String() != "2025-12" {
		t.Errorf("Prev = %s", got)
	}
	if got, want := p.Start(rome), time.Date(2026, 12, 1, 0, 0, 0, 0, rome); !got.Equal(want) || got.Location() != rome {
		t.Errorf("Start(rome) = %v, want %v", got, want)
	}
	if got := p.Start(nil); got != time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC) {
		t.Errorf("Start(nil) = %v", got)
	}
	if !(source.Period{}).IsZero() || p.IsZero() {
		t.Error("IsZero wrong")
	}
}

func TestParsePeriod(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]source.Period{
		"2026-11":  {Year: 2026, Month: time.November},
		"2026-5":   {Year: 2026, Month: time.May},
		" 2026-05": {Year: 2026, Month: time.May},
	} {
		if got, err := source.ParsePeriod(in); err != nil || got != want {
			t.Errorf("ParsePeriod(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "2026", "2026-13", "2026-00", "26-01", "2026-001", "Oct 2026", "2026-1x"} {
		if _, err := source.ParsePeriod(in); err == nil {
			t.Errorf("ParsePeriod(%q) succeeded", in)
		} else if want := `source: period "` + in + `" is not YYYY-MM`; err.Error() != want {
			t.Errorf("ParsePeriod(%q) error = %q, want %q", in, err, want)
		}
	}
}

func TestSum(t *testing.T) {
	t.Parallel()
	in := []source.Record{
		{CustomerID: "b", Product: "P", Quantity: 2, Where: "f:2"},
		{CustomerID: "a", Product: "Q", Quantity: 1, Where: "f:3"},
		{CustomerID: "b", CustomerName: "Bee", Product: "P", ProductName: "Pee", Quantity: 3, Period: "2026-10", Where: "f:4"},
		{CustomerID: "", Product: "P", Quantity: 4, Where: "f:5"},
		{CustomerID: "b", Product: "P", Quantity: 0, Where: "f:6"},
		{CustomerID: "", Product: "P", Quantity: 1, Where: "f:7"},
	}
	want := []source.Record{
		{CustomerID: "", Product: "P", Quantity: 5, Where: "f:5 (+1 more)"},
		{CustomerID: "a", Product: "Q", Quantity: 1, Where: "f:3"},
		{CustomerID: "b", CustomerName: "Bee", Product: "P", ProductName: "Pee", Quantity: 5, Period: "2026-10", Where: "f:2 (+2 more)"},
	}
	got, problems := source.Sum(in)
	if len(problems) != 0 {
		t.Errorf("Sum problems = %v, want none", problems)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Sum mismatch (-want +got):\n%s", diff)
	}
	if !got[0].Unassigned() || got[1].Unassigned() {
		t.Error("Unassigned wrong")
	}
	if sums, _ := source.Sum(nil); len(sums) != 0 {
		t.Error("Sum(nil) not empty")
	}
}

func TestProblemString(t *testing.T) {
	t.Parallel()
	p := source.Problem{Where: "usage.csv:14", Err: errors.New(`quantity "x" is not a whole number`)}
	if got, want := p.String(), `usage.csv:14: quantity "x" is not a whole number`; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	if got := (source.Problem{Err: errors.New("e")}).String(); got != "e" {
		t.Errorf("String without Where = %q", got)
	}
}

// TestSum_overflow: two rows of the largest int64 for one line must not wrap
// around to a small (or negative) quantity; the line is left out and
// reported as unreadable usage of its customer, naming the rows.
func TestSum_overflow(t *testing.T) {
	t.Parallel()
	in := []source.Record{
		{CustomerID: "a", Product: "P", Quantity: 9223372036854775807, Where: "usage.csv:2"},
		{CustomerID: "a", Product: "P", Quantity: 9223372036854775807, Where: "usage.csv:3"},
		{CustomerID: "b", Product: "P", Quantity: 1, Where: "usage.csv:4"},
	}
	got, problems := source.Sum(in)
	if want := []source.Record{in[2]}; !cmp.Equal(want, got) {
		t.Errorf("Sum = %+v, want only %+v", got, want)
	}
	if len(problems) != 1 || !problems[0].Unreadable || problems[0].CustomerID != "a" || problems[0].Product != "P" ||
		problems[0].String() != `usage.csv:2: usage of P by customer "a" adds up to more than 9223372036854775807 with usage.csv:3` {
		t.Errorf("Sum problems = %+v, want one unreadable problem of customer a naming both rows", problems)
	}
	if q, ok := source.AddQuantity(9223372036854775807, 1); ok {
		t.Errorf("AddQuantity(MaxInt64, 1) = %d, true; want false", q)
	}
	if q, ok := source.AddQuantity(-9223372036854775807, -2); ok {
		t.Errorf("AddQuantity(-MaxInt64, -2) = %d, true; want false", q)
	}
}

// The HTTP API and `plan -json` show periods, usage rows and problems in
// snake_case JSON with periods as "YYYY-MM", like the rest of the API.
func TestJSON(t *testing.T) {
	t.Parallel()
	v := struct {
		Period   source.Period    `json:"period"`
		Records  []source.Record  `json:"records"`
		Problems []source.Problem `json:"problems"`
	}{
		Period:   source.Period{Year: 2026, Month: 12},
		Records:  []source.Record{{Product: "XGS-FW", ProductName: "XGS Firewall", Quantity: 3, Where: "usage.csv:6"}},
		Problems: []source.Problem{{Where: "usage.csv:9", Err: errors.New("quantity \"x\" is not a whole number")}},
	}
	got, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"period":"2026-12","records":[{"customer_id":"","product":"XGS-FW","product_name":"XGS Firewall","quantity":3,"where":"usage.csv:6"}],` +
		`"problems":[{"where":"usage.csv:9","error":"quantity \"x\" is not a whole number"}]}`
	if string(got) != want {
		t.Errorf("json.Marshal =\n%s\nwant\n%s", got, want)
	}
	var back source.Period
	if err := json.Unmarshal([]byte(`"2027-01"`), &back); err != nil || back != (source.Period{Year: 2027, Month: 1}) {
		t.Errorf("Unmarshal(\"2027-01\") = %v, %v", back, err)
	}
	if err := json.Unmarshal([]byte(`"2027"`), &back); err == nil {
		t.Error("Unmarshal(\"2027\") succeeded, want an error")
	}
}

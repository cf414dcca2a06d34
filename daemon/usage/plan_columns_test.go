package usage

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
)

// TestPlanColumns checks that a plan comes back from its columns as it
// was: with many changes (customers and services shared between them, two
// effective dates, a change without customer or service, strings that
// encoding/json escapes), with every field of a change set (filled by
// reflection, so that a field added to Change and not to the columns fails
// here), with no changes and with nil changes.
func TestPlanColumns(t *testing.T) {
	t.Parallel()
	eff := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	acme := &ChangeCustomer{Source: "file", CustomerID: "acme", CustomerName: "Acme <&> \"Co\"\t\\ \u2028 é", CompanyID: "174", ContractID: "29684183"}
	bare := &ChangeCustomer{Source: "file", CustomerID: "bare"}
	ix := &ChangeService{ServiceID: "30000012", ServiceName: "Intercept X", Products: []string{"CIXA-MSP", "CIXA-SRV"}}
	empty := &ChangeService{Products: []string{}}
	full := Plan{
		Period: source.Period{Year: 2026, Month: 11}, EffectiveDate: eff, ComputedAt: eff.Add(time.Hour), Customers: 3, RunID: 7,
		Changes: []Change{
			{ChangeCustomer: acme, ChangeService: ix, Current: 40, CurrentKnown: true, Desired: 42, EffectiveDate: eff, Action: ActionUpdate, Reason: "usage 42 (CIXA-MSP 40 + CIXA-SRV 2)"},
			{ChangeCustomer: acme, ChangeService: empty, Desired: -3, EffectiveDate: eff.AddDate(0, 0, 14), Action: ActionHeld, Reason: "line\nbreak \x00"},
			{ChangeCustomer: bare, ChangeService: ix, Current: 1, Desired: 1, EffectiveDate: eff, Action: ActionUnchanged},
			{},
			// Holds no approval releases keep their kind.
			{ChangeCustomer: bare, ChangeService: ix, Current: 9, Desired: 1, EffectiveDate: eff, Action: ActionHeld, posted: true},
			{ChangeCustomer: bare, ChangeService: ix, Current: 9, Desired: 1, EffectiveDate: eff, Action: ActionHeld, laterChange: true},
			{ChangeCustomer: bare, ChangeService: ix, Current: 9, Desired: 1, EffectiveDate: eff, Action: ActionHeld, laterWrite: true},
			{ChangeCustomer: bare, ChangeService: ix, Current: 9, Desired: 1, EffectiveDate: eff, Action: ActionHeld, staleApproval: true},
		},
		Unmapped: Unmapped{Customers: []UnmappedCustomer{{CustomerID: "x", Products: []string{"P"}, Quantity: 1}}, Products: []UnmappedProduct{},
			Unassigned: []source.Record{{Product: "P", Quantity: 3, Where: "usage.csv:4"}}},
		Problems: []source.Problem{{Where: "usage.csv:9", Err: errors.New(`quantity "x" is not a whole number`)}},
		Failures: []Failure{{Source: "file", CustomerID: "d", ContractID: "1", Error: "contract 1 not found", Hint: "map it"}},
	}
	noChanges := full
	noChanges.Changes = []Change{}
	nilChanges := Plan{Period: full.Period}
	for name, p := range map[string]*Plan{"full": &full, "empty": &noChanges, "nil": &nilChanges} {
		data, err := p.MarshalColumns()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !json.Valid(data) {
			t.Fatalf("%s: the columns are not JSON: %s", name, data)
		}
		got, err := UnmarshalColumns(data)
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, data)
		}
		if !reflect.DeepEqual(got, p) {
			t.Errorf("%s: restored\n%+v\nwant\n%+v", name, got, p)
		}
	}
	data, err := full.MarshalColumns()
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), `"Intercept X"`); n != 1 {
		t.Errorf("the columns name a shared service %d times, want once: %s", n, data)
	}
	got, err := UnmarshalColumns(data)
	if err != nil {
		t.Fatal(err)
	}
	if got.Changes[0].ChangeCustomer != got.Changes[1].ChangeCustomer || got.Changes[0].ChangeService != got.Changes[2].ChangeService {
		t.Error("restored changes of one customer or service do not share it")
	}

	var filled Change
	fillChange(t, reflect.ValueOf(&filled).Elem(), new(int))
	p := Plan{Period: source.Period{Year: 2026, Month: 11}, Changes: []Change{filled}}
	data, err = p.MarshalColumns()
	if err != nil {
		t.Fatal(err)
	}
	if got, err = UnmarshalColumns(data); err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(p)
	if back, _ := json.Marshal(got); string(back) != string(want) {
		t.Errorf("a change with every field set came back as\n%s\nwant\n%s", back, want)
	}
}

// TestUnmarshalColumns_errors checks that damaged columns are refused with
// what is wrong, not restored as a plan that differs.
func TestUnmarshalColumns_errors(t *testing.T) {
	t.Parallel()
	p := Plan{Period: source.Period{Year: 2026, Month: 11}, Changes: []Change{{ChangeCustomer: &ChangeCustomer{CustomerID: "a"}, ChangeService: &ChangeService{ServiceID: "1"}, Action: ActionUnchanged}}}
	data, err := p.MarshalColumns()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, old, new, want string }{
		{"short column", `"desired":[0]`, `"desired":[]`, "0 values of desired for 1 changes"},
		{"customer out of range", `"customer":[0]`, `"customer":[1]`, "customer 1 of change 0 is not one of the 1 customers"},
		{"negative service", `"service":[0]`, `"service":[-2]`, "service -2 of change 0 is not one of the 1 services"},
		{"date out of range", `"effective_date":[0]`, `"effective_date":[3]`, "effective_date 3 of change 0 is not one of the 1 dates"},
		{"no plan", `{"plan":{`, `{"plan":null,"x":{`, "no plan"},
		{"not JSON", `{"plan"`, `{plan`, "invalid character"},
	} {
		damaged := strings.Replace(string(data), tt.old, tt.new, 1)
		if damaged == string(data) {
			t.Fatalf("%s: %q is not in %s", tt.name, tt.old, data)
		}
		if _, err := UnmarshalColumns([]byte(damaged)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want it to say %q", tt.name, err, tt.want)
		}
	}
}

// TestPlanColumns_holdKinds: a stored plan keeps why a line is held, so that
// a plan restored from the state database (after a restart, on a standby)
// does not offer an approval that releases nothing; a plan stored before
// the hold column reads every hold as approvable, as it did; a damaged
// hold column is refused.
func TestPlanColumns_holdKinds(t *testing.T) {
	t.Parallel()
	eff := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	cu := &ChangeCustomer{Source: "file", CustomerID: "acme", CompanyID: "174", ContractID: "29684183"}
	sv := &ChangeService{ServiceID: "30000012", Products: []string{"CIXA-MSP"}}
	p := Plan{Period: source.Period{Year: 2026, Month: 11}, Changes: []Change{
		{ChangeCustomer: cu, ChangeService: sv, Current: 9, Desired: 1, EffectiveDate: eff, Action: ActionHeld},
		{ChangeCustomer: cu, ChangeService: sv, Current: 9, Desired: 1, EffectiveDate: eff, Action: ActionHeld, posted: true},
		{ChangeCustomer: cu, ChangeService: sv, Current: 9, Desired: 1, EffectiveDate: eff, Action: ActionHeld, laterWrite: true},
		{ChangeCustomer: cu, ChangeService: sv, Desired: 1, EffectiveDate: eff, Action: ActionHeld, vanished: true},
	}}
	data, err := p.MarshalColumns()
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnmarshalColumns(data)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range []bool{true, false, false, true} {
		if a := got.Changes[k].Approvable(); a != want {
			t.Errorf("restored change %d: Approvable() = %t, want %t", k, a, want)
		}
	}
	if h := got.Changes[3].Hold(); h != HoldVanished {
		t.Errorf("restored change 3: Hold() = %q, want %q", h, HoldVanished)
	}
	old := strings.Replace(string(data), `,"hold":["","posted","later_write","line_missing"]`, "", 1)
	if old == string(data) {
		t.Fatalf("the columns hold no hold column: %s", data)
	}
	if got, err := UnmarshalColumns([]byte(old)); err != nil || !got.Changes[1].Approvable() {
		t.Errorf("a plan stored without the hold column: %v; want it read, its holds approvable as before", err)
	}
	for bad, want := range map[string]string{
		`,"hold":["","posted"]`:                             "changes: 2 values of hold for 4 changes",
		`,"hold":["","posted","later_kind","line_missing"]`: `changes: change 2: unknown hold "later_kind"`,
	} {
		damaged := strings.Replace(string(data), `,"hold":["","posted","later_write","line_missing"]`, bad, 1)
		if _, err := UnmarshalColumns([]byte(damaged)); err == nil || err.Error() != want {
			t.Errorf("UnmarshalColumns with %s = %v, want %q", bad, err, want)
		}
	}
}

// TestWriteColumns_inPieces checks that WriteColumns hands the columns of a
// large plan on in pieces of about columnsFlushBytes, never the whole at
// once, and that the pieces make the columns MarshalColumns returns. The
// daemon compresses them as they come: the columns of a pass over 100,000
// lines held whole beside its plan were the peak of the pass's memory.
func TestWriteColumns_inPieces(t *testing.T) {
	t.Parallel()
	eff := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	p := &Plan{Period: source.Period{Year: 2026, Month: 11}, EffectiveDate: eff, Customers: 20_000}
	svc := &ChangeService{ServiceID: "2", Products: []string{"P"}}
	for i := range 20_000 {
		cu := &ChangeCustomer{Source: "file", CustomerID: strings.Repeat("c", 20) + strconv.Itoa(i), ContractID: strconv.Itoa(i)}
		p.Changes = append(p.Changes, Change{ChangeCustomer: cu, ChangeService: svc, Current: int64(i), CurrentKnown: true, Desired: int64(i),
			EffectiveDate: eff, Action: ActionUnchanged, Reason: "usage " + strconv.Itoa(i)})
	}
	var pieces piecesWriter
	if err := p.WriteColumns(&pieces); err != nil {
		t.Fatal(err)
	}
	whole, err := p.MarshalColumns()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pieces.all, whole) {
		t.Fatalf("the pieces make %d bytes, MarshalColumns %d", len(pieces.all), len(whole))
	}
	if len(whole) < 10*columnsFlushBytes {
		t.Fatalf("the test plan's columns are %d bytes, want at least ten pieces of %d", len(whole), columnsFlushBytes)
	}
	// A piece may run over by the string or number that filled it.
	if limit := columnsFlushBytes + 1024; pieces.largest > limit {
		t.Errorf("WriteColumns wrote a piece of %d bytes of %d, want at most %d", pieces.largest, len(whole), limit)
	}

	failing := errors.New("disk full")
	w := &failingWriter{after: 2, err: failing}
	if err := p.WriteColumns(w); !errors.Is(err, failing) {
		t.Errorf("WriteColumns to a writer failing after 2 pieces = %v, want %v", err, failing)
	}
	if w.calls != 3 {
		t.Errorf("WriteColumns wrote %d times to a writer that failed the third time, want no write after the failure", w.calls)
	}
}

// piecesWriter keeps what is written to it and the largest piece.
type piecesWriter struct {
	all     []byte
	largest int
}

func (w *piecesWriter) Write(p []byte) (int, error) {
	w.all = append(w.all, p...)
	w.largest = max(w.largest, len(p))
	return len(p), nil
}

// failingWriter fails every write after the first after.
type failingWriter struct {
	after, calls int
	err          error
}

func (w *failingWriter) Write(p []byte) (int, error) {
	w.calls++
	if w.calls > w.after {
		return 0, w.err
	}
	return len(p), nil
}

package export

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export/compattest"
)

// jsonFields returns the JSON fields of struct type t, with whether each
// is left out when unset (omitempty or omitzero).
func jsonFields(t reflect.Type) (names []string, omitted map[string]bool) {
	omitted = map[string]bool{}
	for f := range t.Fields() {
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		names = append(names, name)
		omitted[name] = slices.Contains(strings.Split(opts, ","), "omitempty") || slices.Contains(strings.Split(opts, ","), "omitzero")
	}
	return names, omitted
}

// documentObjects are the Document's objects by their path in
// compattest.Reader.Fields.
var documentObjects = map[string]reflect.Type{
	"":                  reflect.TypeFor[Document](),
	"psa":               reflect.TypeFor[PSA](),
	"integration":       reflect.TypeFor[Integration](),
	"tickets":           reflect.TypeFor[Tickets](),
	"product_mappings":  reflect.TypeFor[ProductMapping](),
	"customer_mappings": reflect.TypeFor[CustomerMapping](),
}

// TestReaders_currentIsTheDocument: the newest generation of readers in
// compattest.Readers decodes exactly the fields Encode writes, so that a
// field added to the Document is added there too, and is checked against
// the older readers by TestEncode_olderReaders.
func TestReaders_currentIsTheDocument(t *testing.T) {
	t.Parallel()
	current := compattest.Readers[len(compattest.Readers)-1]
	for path, typ := range documentObjects {
		names, _ := jsonFields(typ)
		if !slices.Equal(names, current.Fields[path]) {
			t.Errorf("export object %q has the fields %v, but the newest reader in compattest.Readers (%s) has %v: "+
				"add a Reader for the psa-syncd that reads the new fields (and write them with omitempty, see TestEncode_olderReaders)",
				path, names, current.Commit, current.Fields[path])
		}
	}
	for path := range current.Fields {
		if _, ok := documentObjects[path]; !ok {
			t.Errorf("compattest.Readers has fields for %q, which the Document does not have", path)
		}
	}
}

// TestEncode_olderReaders: fields are added to schema v1 without a new
// version, and psa-syncd refuses an export with a field it does not know.
// The provider is upgraded in CI while psa-syncd runs on, so an export of
// the current provider that uses no setting newer than an older psa-syncd
// must decode in that psa-syncd: every field added to an object an older
// reader knows is written only when set. A setting it does not have is then
// named in its error.
func TestEncode_olderReaders(t *testing.T) {
	t.Parallel()
	for i, r := range compattest.Readers[:len(compattest.Readers)-1] {
		next := compattest.Readers[i+1]
		for path, typ := range documentObjects {
			known, ok := r.Fields[path]
			if !ok {
				continue
			}
			names, omitted := jsonFields(typ)
			for _, name := range names {
				if !slices.Contains(known, name) && !omitted[name] {
					t.Errorf("export field %s is written even when unset, so psa-syncd before %s (which knows %v) refuses every export: "+
						"write it with omitempty", strings.TrimPrefix(path+"."+name, "."), next.Commit, known)
				}
			}
		}
	}

	// The settings every reader has, as the provider writes them: an
	// integration block with its schedule and zone left to psa-syncd's
	// configuration, and mappings of both kinds.
	doc := New(psa.SystemAutotask, "ci:29683541@webservices5.autotask.net")
	doc.Revision, doc.UpdatedAt = 7, time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	doc.Integration = &Integration{Enabled: true}
	doc.PutProduct(ProductMapping{Source: "sophos", Product: "endpoint", ServiceID: "30000000", ServiceName: "Endpoint", SyncEnabled: true})
	doc.PutCustomer(CustomerMapping{Source: "sophos", CustomerID: "718b6047", CompanyID: "29683541", ContractID: "29684183", UsageSync: true})
	data, err := doc.Encode()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range compattest.Readers {
		if unknown, err := r.Unknown(data); err != nil || len(unknown) > 0 {
			t.Errorf("an export without ticket routing has fields unknown to psa-syncd of %s (%s): %v, %v\n%s", r.Commit, r.What, unknown, err, data)
		}
	}

	// Ticket routing as psa_ticket_routing writes it with its defaults: the
	// tickets object is a setting the first readers do not have, and all
	// they are told of.
	doc.Tickets = &Tickets{Enabled: true, QueueID: "29683", MinSeverity: "medium", TitleFormat: DefaultTitleFormat,
		OnResolve: OnResolveClose, ClosedStatusID: "5", OnReturn: OnReturnNew, MaxPerPass: 50, MaxPerCustomer: 10}
	if data, err = doc.Encode(); err != nil {
		t.Fatal(err)
	}
	if unknown, _ := compattest.Readers[0].Unknown(data); !slices.Equal(unknown, []string{"tickets"}) {
		t.Errorf("the first readers find %v unknown in an export with ticket routing, want [tickets]", unknown)
	}
	for _, r := range compattest.Readers[1:] {
		if unknown, err := r.Unknown(data); err != nil || len(unknown) > 0 {
			t.Errorf("an export with default ticket routing has fields unknown to psa-syncd of %s (%s): %v, %v", r.Commit, r.What, unknown, err)
		}
	}

	// A renewal (psa_customer_mapping.next_contract_id) is a setting the
	// readers before it do not have: they are told of it alone, and an
	// export whose renewals have all been moved into contract_id is read
	// by every generation again.
	doc.Tickets = nil
	doc.PutCustomer(CustomerMapping{Source: "sophos", CustomerID: "718b6047", CompanyID: "29683541", ContractID: "29684183",
		NextContractID: "29684190", UsageSync: true})
	if data, err = doc.Encode(); err != nil {
		t.Fatal(err)
	}
	renewals := slices.IndexFunc(compattest.Readers, func(r compattest.Reader) bool { return r.Commit == "a429353" })
	for _, r := range compattest.Readers[:renewals] {
		if unknown, _ := r.Unknown(data); !slices.Equal(unknown, []string{"customer_mappings[0].next_contract_id"}) {
			t.Errorf("psa-syncd of %s finds %v unknown in an export with a renewal, want [customer_mappings[0].next_contract_id]", r.Commit, unknown)
		}
	}
	for _, r := range compattest.Readers[renewals:] {
		if unknown, err := r.Unknown(data); err != nil || len(unknown) > 0 {
			t.Errorf("psa-syncd of %s finds %v unknown in an export with a renewal (%v)", r.Commit, unknown, err)
		}
	}
	doc.PutCustomer(CustomerMapping{Source: "sophos", CustomerID: "718b6047", CompanyID: "29683541", ContractID: "29684190", UsageSync: true})
	if data, err = doc.Encode(); err != nil {
		t.Fatal(err)
	}
	for _, r := range compattest.Readers {
		if unknown, _ := r.Unknown(data); len(unknown) > 0 {
			t.Errorf("an export whose renewal was moved into contract_id has fields unknown to psa-syncd of %s: %v", r.Commit, unknown)
		}
	}

	// An entry taken over by another resource instance (a
	// create_before_destroy replacement) carries its owner, which the
	// readers before it are told of alone; the entries written by the
	// instances that created them have none, and every generation reads
	// them (checked above).
	doc.PutProduct(ProductMapping{Source: "sophos", Product: "endpoint", ServiceID: "30000000", ServiceName: "Endpoint", SyncEnabled: true,
		Owner: "3f2a9c"})
	doc.PutCustomer(CustomerMapping{Source: "sophos", CustomerID: "718b6047", CompanyID: "29683541", ContractID: "29684190", UsageSync: true,
		Owner: "8d01e4"})
	if data, err = doc.Encode(); err != nil {
		t.Fatal(err)
	}
	owners := slices.IndexFunc(compattest.Readers, func(r compattest.Reader) bool { return r.Commit == "91b1467" })
	for _, r := range compattest.Readers[:owners] {
		want := []string{"customer_mappings[0].owner", "product_mappings[0].owner"}
		if unknown, _ := r.Unknown(data); !slices.Equal(unknown, want) {
			t.Errorf("psa-syncd of %s finds %v unknown in an export with owners, want %v", r.Commit, unknown, want)
		}
	}
	for _, r := range compattest.Readers[owners:] {
		if unknown, err := r.Unknown(data); err != nil || len(unknown) > 0 {
			t.Errorf("psa-syncd of %s finds %v unknown in an export with owners of mappings (%v)", r.Commit, unknown, err)
		}
	}

	// Integration settings taken over by another psa_integration instance
	// carry their owner too.
	doc.Integration.Owner = "KDFMEKRPHFSUX6AA"
	if data, err = doc.Encode(); err != nil {
		t.Fatal(err)
	}
	integration := slices.IndexFunc(compattest.Readers, func(r compattest.Reader) bool { return r.Commit == "de9203e" })
	for _, r := range compattest.Readers[owners:integration] {
		if unknown, _ := r.Unknown(data); !slices.Equal(unknown, []string{"integration.owner"}) {
			t.Errorf("psa-syncd of %s finds %v unknown in an export with an owner of the integration settings, want [integration.owner]", r.Commit, unknown)
		}
	}
	for _, r := range compattest.Readers[integration:] {
		if unknown, err := r.Unknown(data); err != nil || len(unknown) > 0 {
			t.Errorf("psa-syncd of %s finds %v unknown in an export with an owner of the integration settings (%v)", r.Commit, unknown, err)
		}
	}

	// So does ticket routing taken over by another psa_ticket_routing
	// instance.
	doc.Tickets = &Tickets{Enabled: true, QueueID: "29683", MinSeverity: "medium", TitleFormat: DefaultTitleFormat,
		OnResolve: OnResolveClose, ClosedStatusID: "5", OnReturn: OnReturnNew, MaxPerPass: 50, MaxPerCustomer: 10, Owner: "QDVMFJE6HPI5Y7DV"}
	if data, err = doc.Encode(); err != nil {
		t.Fatal(err)
	}
	ticketOwner := slices.IndexFunc(compattest.Readers, func(r compattest.Reader) bool { return r.Commit == "d67e461" })
	for _, r := range compattest.Readers[integration:ticketOwner] {
		if unknown, _ := r.Unknown(data); !slices.Equal(unknown, []string{"tickets.owner"}) {
			t.Errorf("psa-syncd of %s finds %v unknown in an export with an owner of the ticket routing, want [tickets.owner]", r.Commit, unknown)
		}
	}
	for _, r := range compattest.Readers[ticketOwner:] {
		if unknown, err := r.Unknown(data); err != nil || len(unknown) > 0 {
			t.Errorf("psa-syncd of %s finds %v unknown in an export with owners (%v)", r.Commit, unknown, err)
		}
	}

	// A routing's backfill_window is written only when set, and only the
	// current reader knows it.
	doc.Tickets.BackfillWindow = "48h"
	if data, err = doc.Encode(); err != nil {
		t.Fatal(err)
	}
	last := len(compattest.Readers) - 1
	for _, r := range compattest.Readers[ticketOwner:last] {
		if unknown, _ := r.Unknown(data); !slices.Equal(unknown, []string{"tickets.backfill_window"}) {
			t.Errorf("psa-syncd of %s finds %v unknown in an export with a backfill window, want [tickets.backfill_window]", r.Commit, unknown)
		}
	}
	if unknown, err := compattest.Readers[last].Unknown(data); err != nil || len(unknown) > 0 {
		t.Errorf("the current reader finds %v unknown in an export with a backfill window (%v)", unknown, err)
	}
}

// flatten returns r's fields as ReaderFields names them.
func flatten(r compattest.Reader) []string {
	var fields []string
	for path, names := range r.Fields {
		for _, name := range names {
			fields = append(fields, strings.TrimPrefix(path+"."+name, "."))
		}
	}
	slices.Sort(fields)
	return fields
}

// TestReaderFields_readers: ReaderFields, which psa-syncd advertises, are
// the fields of the newest reader generation, and FirstReaderFields those
// of the first, which every psa-syncd reads.
func TestReaderFields_readers(t *testing.T) {
	t.Parallel()
	got := ReaderFields()
	slices.Sort(got)
	if want := flatten(compattest.Readers[len(compattest.Readers)-1]); !slices.Equal(got, want) {
		t.Errorf("ReaderFields() = %v, want the newest reader's %v", got, want)
	}
	first := slices.Clone(FirstReaderFields)
	slices.Sort(first)
	if want := flatten(compattest.Readers[0]); !slices.Equal(first, want) {
		t.Errorf("FirstReaderFields = %v, want the first reader's %v", first, want)
	}
}

// TestUnknownFields: the fields of an export that a reader generation
// does not know, as the plan names them to the user: a new object alone,
// not each of its fields.
func TestUnknownFields(t *testing.T) {
	t.Parallel()
	doc := New(psa.SystemAutotask, "")
	doc.Tickets = &Tickets{Enabled: true, QueueID: "29683", MinSeverity: "medium", TitleFormat: DefaultTitleFormat,
		OnResolve: OnResolveClose, ClosedStatusID: "5", OnReturn: OnReturnNew, MaxPerPass: 50, MaxPerCustomer: 10}
	doc.PutCustomer(CustomerMapping{Source: "sophos", CustomerID: "718b6047", CompanyID: "29683541", ContractID: "29684183",
		NextContractID: "29684190", UsageSync: true, Owner: "8d01e4"})
	data, err := doc.Encode()
	if err != nil {
		t.Fatal(err)
	}
	written, err := WrittenFields(data)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range [][]string{
		{"customer_mappings.next_contract_id", "customer_mappings.owner", "tickets"},
		{"customer_mappings.next_contract_id", "customer_mappings.owner"},
		{"customer_mappings.owner"},
		nil, nil, nil,
	} {
		if got := UnknownFields(written, flatten(compattest.Readers[i])); !slices.Equal(got, want) {
			t.Errorf("fields unknown to psa-syncd of %s = %v, want %v", compattest.Readers[i].Commit, got, want)
		}
	}
	if got := ParseReaderFields(" tickets , tickets.owner,,"); !slices.Equal(got, []string{"tickets", "tickets.owner"}) {
		t.Errorf("ParseReaderFields = %v, want [tickets tickets.owner]", got)
	}
}

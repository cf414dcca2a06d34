package export

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

var update = flag.Bool("update", false, "rewrite testdata/golden.json from the test document")

// testDocument returns a document with its mappings out of key order and a
// time outside UTC, so that Encode has to sort and normalise.
func testDocument() *Document {
	d := New(psa.SystemAutotask, "webservices5.autotask.net")
	d.Revision = 12
	d.UpdatedAt = time.Date(2026, 11, 21, 11, 0, 0, 0, time.FixedZone("CET", 3600))
	d.Integration = &Integration{Enabled: true, Schedule: "daily 02:00", Timezone: "Europe/Rome"}
	d.PutProduct(ProductMapping{Source: "sophos", Product: "MDR-MSP", ServiceID: "30000013", ServiceName: "Sophos MDR", SyncEnabled: true})
	d.PutProduct(ProductMapping{Source: "passwordboss", Product: "PB-BUSINESS", ServiceID: "30000020", ServiceName: "Password Boss <Business> & more", SyncEnabled: false})
	d.PutProduct(ProductMapping{Source: "sophos", Product: "CIXA-MSP", ServiceID: "30000012", ServiceName: "Sophos Intercept X Advanced", SyncEnabled: true})
	d.PutCustomer(CustomerMapping{Source: "sophos", CustomerID: "9c0e1a2b-55aa-4bcd-8e2f-0123456789ab", CustomerName: "Globex", CompanyID: "180", ContractID: "29684190", UsageSync: false, TicketSync: true})
	d.PutCustomer(CustomerMapping{Source: "sophos", CustomerID: "718b6047-2f4c-4f8e-9d27-3f0d9a1c5e11", CustomerName: "Acme", CompanyID: "174", ContractID: "29684183", UsageSync: true})
	d.PutCustomer(CustomerMapping{Source: "file", CustomerID: "C-0042", CustomerName: "Initech", CompanyID: "181", ContractID: "29684200", UsageSync: true})
	return d
}

func TestDocument_Encode_golden(t *testing.T) {
	t.Parallel()
	d := testDocument()
	got, err := d.Encode()
	if err != nil {
		t.Fatalf("Encode returned error %v", err)
	}
	golden := filepath.Join("testdata", "golden.json")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("Encode mismatch (-want +got):\n%s", diff)
	}
	if !bytes.HasSuffix(got, []byte("}\n")) || bytes.Contains(got, []byte("\t")) {
		t.Errorf("Encode output is not 2-space indented with a trailing newline:\n%s", got)
	}

	// Encode leaves the document as it was.
	if diff := cmp.Diff(testDocument(), d); diff != "" {
		t.Errorf("Encode modified the document (-want +got):\n%s", diff)
	}

	// Encoding does not depend on insertion order.
	r := New(psa.SystemAutotask, "webservices5.autotask.net")
	r.Revision, r.UpdatedAt, r.Integration = d.Revision, d.UpdatedAt.UTC(), d.Integration
	for i := len(d.ProductMappings) - 1; i >= 0; i-- {
		r.PutProduct(d.ProductMappings[i])
	}
	for i := len(d.CustomerMappings) - 1; i >= 0; i-- {
		r.PutCustomer(d.CustomerMappings[i])
	}
	again, err := r.Encode()
	if err != nil || !bytes.Equal(again, got) {
		t.Errorf("Encode of the same mappings in another order differs (err %v):\n%s", err, again)
	}
}

func TestDecode_roundTrip(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join("testdata", "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := Decode(data)
	if err != nil {
		t.Fatalf("Decode returned error %v", err)
	}
	if d.Revision != 12 || d.PSA.System != psa.SystemAutotask || !d.UpdatedAt.Equal(time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("Decode = %+v", d)
	}
	if m, ok := d.Customer("sophos", "718b6047-2f4c-4f8e-9d27-3f0d9a1c5e11"); !ok || m.ContractID != "29684183" || !m.UsageSync {
		t.Errorf("Customer(sophos, 718b...) = %+v, %v", m, ok)
	}
	out, err := d.Encode()
	if err != nil {
		t.Fatalf("Encode returned error %v", err)
	}
	if diff := cmp.Diff(string(data), string(out)); diff != "" {
		t.Errorf("Decode then Encode is not the identity (-golden +got):\n%s", diff)
	}
}

func TestDecode_minimal(t *testing.T) {
	t.Parallel()
	// Hand-written exports may leave out revision, updated_at, the
	// integration block, the instance and empty mapping lists; null counts
	// as absent.
	d, err := Decode([]byte(`{"schema": "psa-sync.mapping-export/v1", "psa": {"system": "kaseya_bms"}, "integration": null, "product_mappings": null}`))
	if err != nil {
		t.Fatalf("Decode returned error %v", err)
	}
	want := &Document{Schema: SchemaV1, PSA: PSA{System: psa.SystemKaseyaBMS}, ProductMappings: []ProductMapping{}, CustomerMappings: []CustomerMapping{}}
	if diff := cmp.Diff(want, d); diff != "" {
		t.Errorf("Decode mismatch (-want +got):\n%s", diff)
	}
	// Empty schedule and time zone mean "the daemon's configuration".
	if _, err := Decode([]byte(`{"schema": "psa-sync.mapping-export/v1", "psa": {"system": "connectwise"}, "integration": {"enabled": false, "schedule": "", "timezone": ""}}`)); err != nil {
		t.Errorf("Decode with an empty schedule returned error %v", err)
	}
}

// TestStore_Read_bad reads every testdata/bad-*.json through a Store and
// compares the whole error message, as blackbox_exporter's config tests do.
func TestStore_Read_bad(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"bad-contract-missing.json": `export "testdata/bad-contract-missing.json": 2 problems:
	customer_mappings[1] (sophos/9c0e1a2b): contract_id is required
	customer_mappings[2] (sophos/5d3f): contract_id is required`,
		"bad-duplicate-customer.json": `export "testdata/bad-duplicate-customer.json": customer_mappings[1] (sophos/718b6047): has the same source and customer_id as customer_mappings[0]`,
		"bad-duplicate-key.json": `export "testdata/bad-duplicate-key.json": 2 problems:
	psa.system appears twice in one object (again at line 3, column 74): JSON readers differ on which one counts, so remove one
	customer_mappings[0] (sophos/718b6047): contract_id appears twice in one object (again at line 9, column 33): JSON readers differ on which one counts, so remove one`,
		"bad-duplicate-product.json": `export "testdata/bad-duplicate-product.json": product_mappings[2] (sophos/CIXA-MSP): has the same source and product as product_mappings[0]`,
		"bad-empty.json":             `export "testdata/bad-empty.json": not valid JSON: the file is empty (the file may be half-written or edited by hand)`,
		"bad-fields-missing.json": `export "testdata/bad-fields-missing.json": 4 problems:
	product_mappings[0] (sophos/): product is required
	product_mappings[1] (sophos/MDR): service_id is required
	customer_mappings[0] (sophos/): customer_id is required
	customer_mappings[0] (sophos/): company_id is required`,
		"bad-merge-conflict.json": `export "testdata/bad-merge-conflict.json": not valid JSON at line 1, column 1 (byte 0): invalid character '<' looking for beginning of value (the file may be half-written or edited by hand)`,
		"bad-nul-id.json": `export "testdata/bad-nul-id.json": 2 problems:
	product_mappings[0] (sophos/CIXA-MSP\x00): product must not contain a NUL byte
	customer_mappings[1] (sophos/9c0e\x001a2b): customer_id must not contain a NUL byte`,
		"bad-not-object.json":        `export "testdata/bad-not-object.json": the document must be a JSON object`,
		"bad-revision-negative.json": `export "testdata/bad-revision-negative.json": revision must not be negative (got -4)`,
		"bad-schedule.json":          `export "testdata/bad-schedule.json": integration.schedule is invalid: schedule "daily 25:00": hour must be 00-23`,
		"bad-schema-missing.json":    `export "testdata/bad-schema-missing.json": schema is required (supported: "psa-sync.mapping-export/v1")`,
		"bad-schema-unknown.json":    `export "testdata/bad-schema-unknown.json": schema "psa-sync.mapping-export/v2" is not a supported version (supported: "psa-sync.mapping-export/v1"): a newer psa-sync wrote it; upgrade this psa-syncd or provider to one that reads it`,
		"bad-source-empty.json": `export "testdata/bad-source-empty.json": 2 problems:
	product_mappings[0] (/CIXA-MSP): source is required
	customer_mappings[0] (/718b6047): source is required`,
		"bad-syntax.json":         `export "testdata/bad-syntax.json": not valid JSON at line 4, column 26 (byte 118): invalid character ',' looking for beginning of object key string (the file may be half-written or edited by hand)`,
		"bad-system-missing.json": `export "testdata/bad-system-missing.json": psa.system is required (want autotask, connectwise or kaseya_bms)`,
		"bad-system-unknown.json": `export "testdata/bad-system-unknown.json": psa.system "halopsa" is not a known PSA system (want autotask, connectwise or kaseya_bms)`,
		"bad-timezone.json":       `export "testdata/bad-timezone.json": integration.timezone "Europe/Milan" is not a usable time zone (want an IANA name such as "Europe/Rome" or "UTC")`,
		"bad-trailing.json":       `export "testdata/bad-trailing.json": not valid JSON at line 7, column 1 (byte 147): unexpected data after the end of the document (the file may be half-written or edited by hand)`,
		"bad-truncated.json":      `export "testdata/bad-truncated.json": not valid JSON at line 5, column 31 (byte 147): unexpected end of input (the file may be half-written or edited by hand)`,
		"bad-unknown-field.json": `export "testdata/bad-unknown-field.json": 4 problems:
	integration.token is not a known field (want enabled, schedule, timezone, owner): a misspelling, or written by a newer provider (upgrade this psa-syncd or provider to read it)
	secret is not a known field (want schema, psa, revision, updated_at, integration, tickets, product_mappings, customer_mappings): a misspelling, or written by a newer provider (upgrade this psa-syncd or provider to read it)
	customer_mappings[0] (sophos/718b6047): contract is not a known field (want source, customer_id, customer_name, company_id, contract_id, next_contract_id, usage_sync, ticket_sync, owner): a misspelling, or written by a newer provider (upgrade this psa-syncd or provider to read it)
	customer_mappings[0] (sophos/718b6047): contract_id is required`,
		"bad-wrong-type.json": `export "testdata/bad-wrong-type.json": 7 problems:
	psa.instance must be a string
	revision must be an integer
	updated_at must be an RFC 3339 time such as "2026-11-21T10:00:00Z"
	customer_mappings must be a JSON array
	product_mappings[0] (sophos/CIXA-MSP): service_id must be a string
	product_mappings[0] (sophos/CIXA-MSP): sync_enabled must be true or false
	product_mappings[1]: must be a JSON object`,
	}
	files, err := filepath.Glob(filepath.Join("testdata", "bad-*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(tests) {
		t.Errorf("testdata has %d bad-*.json files, the table %d", len(files), len(tests))
	}
	for _, file := range files {
		name := filepath.Base(file)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			want, ok := tests[name]
			if !ok {
				t.Fatalf("no expected error for %s", file)
			}
			d, err := NewStore(file).Read()
			if err == nil {
				t.Fatalf("Read returned %+v, want error", d)
			}
			if got := err.Error(); got != want {
				t.Errorf("Read error\n got: %s\nwant: %s", got, want)
			}
			var ve *ValidationError
			var se *SyntaxError
			if !errors.As(err, &ve) && !errors.As(err, &se) {
				t.Errorf("Read error %T is neither *ValidationError nor *SyntaxError", err)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error message contains a secret value: %v", err)
			}
			// Decode of the same bytes says the same without the file name.
			data, _ := os.ReadFile(file)
			_, derr := Decode(data)
			wantDecode := "export: " + strings.TrimPrefix(want, fmt.Sprintf("export %q: ", file))
			if derr == nil || derr.Error() != wantDecode {
				t.Errorf("Decode error\n got: %v\nwant: %s", derr, wantDecode)
			}
		})
	}
}

func TestDocument_Validate(t *testing.T) {
	t.Parallel()
	if err := testDocument().Validate(); err != nil {
		t.Fatalf("Validate of a good document returned %v", err)
	}
	if err := New(psa.SystemConnectWise, "").Validate(); err != nil {
		t.Fatalf("Validate of a new document returned %v", err)
	}

	d := testDocument()
	d.CustomerMappings[0].ContractID = ""
	d.ProductMappings = append(d.ProductMappings, d.ProductMappings[1])
	err := d.Validate()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Validate returned %v, want a *ValidationError", err)
	}
	want := []Problem{
		{Entry: "product_mappings[3] (passwordboss/PB-BUSINESS)", Message: "has the same source and product as product_mappings[1]"},
		{Entry: "customer_mappings[0] (sophos/9c0e1a2b-55aa-4bcd-8e2f-0123456789ab)", Field: "contract_id", Message: "is required"},
	}
	if diff := cmp.Diff(want, ve.Problems); diff != "" {
		t.Errorf("Problems mismatch (-want +got):\n%s", diff)
	}
	wantMsg := `export: 2 problems:
	product_mappings[3] (passwordboss/PB-BUSINESS): has the same source and product as product_mappings[1]
	customer_mappings[0] (sophos/9c0e1a2b-55aa-4bcd-8e2f-0123456789ab): contract_id is required`
	if err.Error() != wantMsg {
		t.Errorf("Validate error\n got: %s\nwant: %s", err, wantMsg)
	}
}

func TestValidationError_capped(t *testing.T) {
	t.Parallel()
	d := New(psa.SystemAutotask, "")
	for i := range 25 {
		d.PutCustomer(CustomerMapping{Source: "sophos", CustomerID: fmt.Sprint(i), CompanyID: "1"})
	}
	err := d.Validate()
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 25 {
		t.Fatalf("Validate returned %v", err)
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 22 {
		t.Errorf("Error() has %d lines, want a header, 20 problems and a count", len(lines))
	}
	if lines[0] != "export: 25 problems:" || lines[21] != "\t... and 5 more" {
		t.Errorf("Error() = %s", err)
	}
}

func TestDocument_accessors(t *testing.T) {
	t.Parallel()
	d := New(psa.SystemAutotask, "")
	if _, ok := d.Product("sophos", "X"); ok {
		t.Error("Product found in an empty document")
	}
	d.PutProduct(ProductMapping{Source: "sophos", Product: "X", ServiceID: "1"})
	d.PutProduct(ProductMapping{Source: "file", Product: "X", ServiceID: "2"})
	d.PutProduct(ProductMapping{Source: "sophos", Product: "X", ServiceID: "3"})
	if len(d.ProductMappings) != 2 {
		t.Errorf("PutProduct of an existing key appended: %+v", d.ProductMappings)
	}
	if m, ok := d.Product("sophos", "X"); !ok || m.ServiceID != "3" {
		t.Errorf("Product(sophos, X) = %+v, %v", m, ok)
	}
	if !d.DeleteProduct("sophos", "X") || d.DeleteProduct("sophos", "X") {
		t.Error("DeleteProduct did not report the deletion once")
	}
	if m, ok := d.Product("file", "X"); !ok || m.ServiceID != "2" {
		t.Errorf("Product(file, X) = %+v, %v", m, ok)
	}

	if _, ok := d.Customer("sophos", "c"); ok {
		t.Error("Customer found in an empty document")
	}
	d.PutCustomer(CustomerMapping{Source: "sophos", CustomerID: "c", ContractID: "1"})
	d.PutCustomer(CustomerMapping{Source: "sophos", CustomerID: "c", ContractID: "2"})
	if m, ok := d.Customer("sophos", "c"); !ok || m.ContractID != "2" || len(d.CustomerMappings) != 1 {
		t.Errorf("Customer(sophos, c) = %+v, %v", m, ok)
	}
	if !d.DeleteCustomer("sophos", "c") || d.DeleteCustomer("sophos", "c") || len(d.CustomerMappings) != 0 {
		t.Error("DeleteCustomer did not report the deletion once")
	}

	// Clone is deep.
	d.Integration = &Integration{Schedule: "daily 02:00"}
	c := d.Clone()
	c.Integration.Schedule = "every 1h"
	c.ProductMappings[0].ServiceID = "9"
	if d.Integration.Schedule != "daily 02:00" || d.ProductMappings[0].ServiceID != "2" {
		t.Error("Clone shares memory with the original")
	}
}

func TestDecode_notObjects(t *testing.T) {
	t.Parallel()
	_, err := Decode([]byte(`{"schema": "psa-sync.mapping-export/v1", "psa": "autotask", "integration": [], "customer_mappings": [null, 7]}`))
	want := `export: 4 problems:
	psa must be a JSON object
	integration must be a JSON object
	customer_mappings[0]: must be a JSON object
	customer_mappings[1]: must be a JSON object`
	if err == nil || err.Error() != want {
		t.Errorf("Decode error\n got: %v\nwant: %s", err, want)
	}
}

// TestDecode_fieldOfANewerProvider: a field that a newer provider writes
// into a v1 export (as psa_ticket_routing's were added) is refused by an
// older reader with a way out, not only as unknown.
func TestDecode_fieldOfANewerProvider(t *testing.T) {
	t.Parallel()
	_, err := Decode([]byte(`{"schema": "psa-sync.mapping-export/v1", "psa": {"system": "autotask"}, "integration": {"enabled": true, "pause_until": "2027-01-01"}}`))
	want := `export: integration.pause_until is not a known field (want enabled, schedule, timezone, owner): ` +
		`a misspelling, or written by a newer provider (upgrade this psa-syncd or provider to read it)`
	if err == nil || err.Error() != want {
		t.Errorf("Decode error\n got: %v\nwant: %s", err, want)
	}
}

// TestContentEqual checks that a change to any field of the document, its
// settings or one of its mappings counts as a change, and that revision,
// updated_at and the order of the mappings do not.
func TestContentEqual(t *testing.T) {
	t.Parallel()
	base := testDocument()
	base.Tickets = &Tickets{QueueID: "5", Priorities: map[string]string{"high": "1"}}

	same := base.Clone()
	same.Revision++
	same.UpdatedAt = same.UpdatedAt.Add(time.Hour)
	slices.Reverse(same.ProductMappings)
	slices.Reverse(same.CustomerMappings)
	if !contentEqual(base, same) {
		t.Error("contentEqual counts revision, updated_at or the order of the mappings")
	}
	if !contentEqual(New(psa.SystemAutotask, "x"), &Document{Schema: SchemaV1, PSA: PSA{System: psa.SystemAutotask, Instance: "x"}}) {
		t.Error("contentEqual tells no mappings from an empty list of them")
	}

	// Each change is made to a clone of base through the pointer it is
	// given: every field of every part in turn.
	parts := map[string]func(*Document) any{
		"document":             func(d *Document) any { return d },
		"psa":                  func(d *Document) any { return &d.PSA },
		"integration":          func(d *Document) any { return d.Integration },
		"tickets":              func(d *Document) any { return d.Tickets },
		"product_mappings[1]":  func(d *Document) any { return &d.ProductMappings[1] },
		"customer_mappings[2]": func(d *Document) any { return &d.CustomerMappings[2] },
	}
	for name, part := range parts {
		v := reflect.ValueOf(part(base)).Elem()
		for i := range v.NumField() {
			field := v.Type().Field(i)
			switch field.Name {
			case "Revision", "UpdatedAt", "PSA", "Integration", "Tickets", "ProductMappings", "CustomerMappings":
				continue // ignored, or a part of its own
			}
			d := base.Clone()
			f := reflect.ValueOf(part(d)).Elem().Field(i)
			switch f.Kind() {
			case reflect.String:
				f.SetString(f.String() + "-changed")
			case reflect.Bool:
				f.SetBool(!f.Bool())
			case reflect.Int64:
				f.SetInt(f.Int() + 1)
			case reflect.Map:
				f.SetMapIndex(reflect.ValueOf("low"), reflect.ValueOf("9"))
			default:
				t.Fatalf("%s.%s: a %s field; teach this test to change it", name, field.Name, f.Kind())
			}
			if contentEqual(base, d) {
				t.Errorf("contentEqual misses a change of %s.%s", name, field.Name)
			}
		}
	}
	for name, change := range map[string]func(*Document){
		"integration removed":   func(d *Document) { d.Integration = nil },
		"tickets removed":       func(d *Document) { d.Tickets = nil },
		"product mapping added": func(d *Document) { d.PutProduct(ProductMapping{Source: "sophos", Product: "NEW", ServiceID: "1"}) },
		"customer mapping gone": func(d *Document) { d.DeleteCustomer("file", "C-0042") },
		"one mapping replaced by another": func(d *Document) {
			d.ProductMappings[0] = ProductMapping{Source: "sophos", Product: "OTHER", ServiceID: "1"}
		},
	} {
		d := base.Clone()
		change(d)
		if contentEqual(base, d) || contentEqual(d, base) {
			t.Errorf("contentEqual misses: %s", name)
		}
	}
}

func TestDocument_CheckIDs(t *testing.T) {
	t.Parallel()
	if err := testDocument().CheckIDs(); err != nil {
		t.Fatalf("CheckIDs of a good document returned %v", err)
	}

	d := testDocument()
	d.ProductMappings[0].ServiceID = " 30000013"    // sophos/MDR-MSP
	d.CustomerMappings[0].CompanyID = "180 "        // sophos/9c0e1a2b-...
	d.CustomerMappings[1].ContractID = "svc-future" // a placeholder, which Validate accepts
	d.CustomerMappings[2].ContractID = "029684200"  // file/C-0042
	if err := d.Validate(); err != nil {
		t.Fatalf("Validate returned %v, want nil: it does not check the spelling of ids", err)
	}
	err := d.CheckIDs()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("CheckIDs returned %v, want a *ValidationError", err)
	}
	form := ": Autotask ids are whole numbers from 0 up, written in decimal digits alone, such as \"29684183\""
	want := []Problem{
		{Entry: "product_mappings[0] (sophos/MDR-MSP)", Field: "service_id", Message: `" 30000013" is not a valid Autotask id` + form},
		{Entry: "customer_mappings[0] (sophos/9c0e1a2b-55aa-4bcd-8e2f-0123456789ab)", Field: "company_id", Message: `"180 " is not a valid Autotask id` + form},
		{Entry: "customer_mappings[1] (sophos/718b6047-2f4c-4f8e-9d27-3f0d9a1c5e11)", Field: "contract_id", Message: `"svc-future" is not a valid Autotask id` + form},
		{Entry: "customer_mappings[2] (file/C-0042)", Field: "contract_id", Message: `"029684200" is not a valid Autotask id` + form},
	}
	if diff := cmp.Diff(want, ve.Problems); diff != "" {
		t.Errorf("Problems mismatch (-want +got):\n%s", diff)
	}
}

// TestValidate_nextContract: a renewal is checked as contract_id is, and
// one that names contract_id itself is refused, naming the field.
func TestValidate_nextContract(t *testing.T) {
	t.Parallel()
	doc := New(psa.SystemAutotask, "webservices5.autotask.net")
	doc.PutCustomer(CustomerMapping{Source: "sophos", CustomerID: "a", CompanyID: "1", ContractID: "10", NextContractID: "11", UsageSync: true})
	if err := doc.Validate(); err != nil {
		t.Fatalf("a renewal: %v", err)
	}
	doc.PutCustomer(CustomerMapping{Source: "sophos", CustomerID: "a", CompanyID: "1", ContractID: "10", NextContractID: "10", UsageSync: true})
	if err := doc.Validate(); err == nil || !strings.Contains(err.Error(), `next_contract_id is contract_id "10"`) {
		t.Errorf("a renewal that is contract_id: %v", err)
	}
	doc.PutCustomer(CustomerMapping{Source: "sophos", CustomerID: "a", CompanyID: "1", ContractID: "10", NextContractID: "011", UsageSync: true})
	if err := doc.CheckIDs(); err == nil || !strings.Contains(err.Error(), "next_contract_id") {
		t.Errorf("a renewal id spelled otherwise: %v", err)
	}
}

// TestDecode_owner: the owner of an entry taken over by another resource
// instance is read back as written, and one with a NUL byte is refused like
// an id (no state database stores it).
func TestDecode_owner(t *testing.T) {
	t.Parallel()
	doc := New(psa.SystemAutotask, "webservices5.autotask.net")
	doc.PutProduct(ProductMapping{Source: "sophos", Product: "CIXA-MSP", ServiceID: "30000012", SyncEnabled: true, Owner: "QDVMFJE6HPI5Y7DV"})
	doc.PutCustomer(CustomerMapping{Source: "sophos", CustomerID: "a", CompanyID: "1", ContractID: "10", UsageSync: true, Owner: "3ARVI75YKGQ3DHT7"})
	data, err := doc.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(data)
	if err != nil {
		t.Fatalf("Decode of an export with owners: %v", err)
	}
	p, _ := got.Product("sophos", "CIXA-MSP")
	c, _ := got.Customer("sophos", "a")
	if p.Owner != "QDVMFJE6HPI5Y7DV" || c.Owner != "3ARVI75YKGQ3DHT7" {
		t.Errorf("owners read back = %q, %q; want QDVMFJE6HPI5Y7DV, 3ARVI75YKGQ3DHT7", p.Owner, c.Owner)
	}
	doc.Integration = &Integration{Enabled: false, Owner: "KDFMEKRPHFSUX6AA"}
	if data, err = doc.Encode(); err != nil {
		t.Fatal(err)
	}
	if got, err = Decode(data); err != nil || got.Integration == nil || got.Integration.Owner != "KDFMEKRPHFSUX6AA" {
		t.Errorf("Decode of integration settings with an owner = %+v, %v", got.Integration, err)
	}
	doc.Tickets = &Tickets{Enabled: true, QueueID: "29683", MinSeverity: "medium", TitleFormat: DefaultTitleFormat,
		OnResolve: OnResolveClose, ClosedStatusID: "5", OnReturn: OnReturnNew, Owner: "8D01E4"}
	if data, err = doc.Encode(); err != nil {
		t.Fatal(err)
	}
	if got, err = Decode(data); err != nil || got.Tickets == nil || got.Tickets.Owner != "8D01E4" {
		t.Errorf("Decode of ticket routing with an owner = %+v, %v", got.Tickets, err)
	}
	if !contentEqual(doc, doc.Clone()) || contentEqual(doc, func() *Document { c := doc.Clone(); c.Tickets.Owner = ""; return c }()) {
		t.Errorf("contentEqual does not tell ticket routings of other owners apart: an owner taken over would not be written")
	}
	doc.PutCustomer(CustomerMapping{Source: "sophos", CustomerID: "a", CompanyID: "1", ContractID: "10", UsageSync: true, Owner: "3ARV\x00"})
	if err := doc.Validate(); err == nil || !strings.Contains(err.Error(), "owner must not contain a NUL byte") {
		t.Errorf("an owner with a NUL byte: %v", err)
	}
}

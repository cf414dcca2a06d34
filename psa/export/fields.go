package export

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// ReaderFieldsHeader is the header of psa-syncd's answers to
// GET /api/v1/export that lists the export fields it reads (ReaderFields,
// comma-separated). Fields are added to schema v1 without a new version,
// and psa-syncd refuses a whole export with a field it does not know, so a
// provider newer than psa-syncd compares the fields its plan would write
// with this list and fails the plan instead of the apply. psa-syncd before
// the header sends none.
const ReaderFieldsHeader = "Psa-Sync-Export-Fields"

// readerObjects are the objects of a Document whose fields a reader
// knows one by one, by their field in the Document: the objects under the
// top level and those in its lists. Other values (tickets.priorities, a
// map of severities) are a field as a whole.
var readerObjects = map[string]reflect.Type{
	"psa":               reflect.TypeFor[PSA](),
	"integration":       reflect.TypeFor[Integration](),
	"tickets":           reflect.TypeFor[Tickets](),
	"product_mappings":  reflect.TypeFor[ProductMapping](),
	"customer_mappings": reflect.TypeFor[CustomerMapping](),
}

// readerFields is ReaderFields, computed once.
var readerFields = func() []string {
	var fields []string
	for _, top := range jsonNames(reflect.TypeFor[Document]()) {
		fields = append(fields, top)
		if typ, ok := readerObjects[top]; ok {
			for _, name := range jsonNames(typ) {
				fields = append(fields, top+"."+name)
			}
		}
	}
	return fields
}()

// FirstReaderFields are the fields of schema v1 as first written, which
// every psa-syncd reads: the fields an export may hold whatever the
// psa-syncd reading it.
var FirstReaderFields = []string{
	"schema", "psa", "psa.system", "psa.instance", "revision", "updated_at",
	"integration", "integration.enabled", "integration.schedule", "integration.timezone",
	"product_mappings", "product_mappings.source", "product_mappings.product", "product_mappings.service_id",
	"product_mappings.service_name", "product_mappings.sync_enabled",
	"customer_mappings", "customer_mappings.source", "customer_mappings.customer_id", "customer_mappings.customer_name",
	"customer_mappings.company_id", "customer_mappings.contract_id", "customer_mappings.usage_sync", "customer_mappings.ticket_sync",
}

// jsonNames returns the JSON field names of struct type t, in order.
func jsonNames(t reflect.Type) []string {
	var names []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		names = append(names, name)
	}
	return names
}

// ReaderFields returns the fields of the export that Decode reads, as
// dotted paths: "tickets" for the object, "tickets.owner" for a field in
// it, "customer_mappings.next_contract_id" for a field of every entry of
// the list. psa-syncd advertises them in ReaderFieldsHeader.
func ReaderFields() []string {
	return slices.Clone(readerFields)
}

// WrittenFields returns the fields that the encoded export data holds, as
// ReaderFields names them, sorted and each once.
func WrittenFields(data []byte) ([]string, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("export: the export is not a JSON object: %w", err)
	}
	var fields []string
	for k, v := range top {
		fields = append(fields, k)
		if _, ok := readerObjects[k]; !ok {
			continue
		}
		var objects []map[string]json.RawMessage
		var one map[string]json.RawMessage
		if json.Unmarshal(v, &one) == nil && one != nil {
			objects = append(objects, one)
		} else {
			_ = json.Unmarshal(v, &objects) // null, or not a list of objects: the field alone
		}
		for _, obj := range objects {
			for name := range obj {
				fields = append(fields, k+"."+name)
			}
		}
	}
	slices.Sort(fields)
	return slices.Compact(fields), nil
}

// UnknownFields returns the fields of written (as WrittenFields returns
// them) that are not in known, sorted. A field inside an object that known
// lacks is left out: the object names it.
func UnknownFields(written, known []string) []string {
	var unknown []string
	for _, f := range written {
		if slices.Contains(known, f) {
			continue
		}
		if parent, _, nested := strings.Cut(f, "."); nested && !slices.Contains(known, parent) {
			continue
		}
		unknown = append(unknown, f)
	}
	slices.Sort(unknown)
	return unknown
}

// ParseReaderFields returns the fields listed in a ReaderFieldsHeader
// value.
func ParseReaderFields(header string) []string {
	var fields []string
	for f := range strings.SplitSeq(header, ",") {
		if f = strings.TrimSpace(f); f != "" {
			fields = append(fields, f)
		}
	}
	return fields
}

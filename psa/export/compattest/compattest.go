// Package compattest checks mapping exports against the field sets that
// earlier psa-syncd versions read, for the tests of the export and of the
// provider.
//
// The export's schema stays psa-sync.mapping-export/v1 while fields are
// added to it, and psa-syncd decodes it strictly: a field it does not know
// makes it refuse the whole export. The provider and psa-syncd are upgraded
// at different times (the provider from the Terraform lock file in CI,
// psa-syncd on its VM or in Kubernetes), so a newer provider's export must
// still be read by an older psa-syncd as long as it uses no setting that
// psa-syncd does not have: a field added to an object that an older reader
// knows is written only when set (omitempty). Readers lists, from git
// history, what each generation of readers knows.
package compattest

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Reader is one generation of export readers: the fields that psa-syncd
// (and the provider) of that generation decode. Fields maps an object's path
// to its field names: "" is the top level, "psa", "integration" and
// "tickets" the objects under it, "product_mappings" and
// "customer_mappings" the objects in those lists. An object whose path is
// not there is not looked into ("tickets.priorities" maps severities).
type Reader struct {
	// Commit is the first commit whose reader decodes exactly these fields.
	Commit string
	// What says what the generation added.
	What   string
	Fields map[string][]string
}

var (
	v1Top         = []string{"schema", "psa", "revision", "updated_at", "integration", "product_mappings", "customer_mappings"}
	v1PSA         = []string{"system", "instance"}
	v1Integration = []string{"enabled", "schedule", "timezone"}
	v1Products    = []string{"source", "product", "service_id", "service_name", "sync_enabled"}
	v1Customers   = []string{"source", "customer_id", "customer_name", "company_id", "contract_id", "usage_sync", "ticket_sync"}
	v1Tickets     = []string{
		"enabled", "schedule", "queue_id", "new_status_id", "closed_status_id", "reopen_status_id", "priorities",
		"source_id", "issue_type_id", "sub_issue_type_id", "ticket_type_id", "category_id", "note_type_id",
		"min_severity", "title_format", "on_resolve", "on_return", "reopen_window", "max_per_pass", "max_per_customer",
	}
)

// Readers are the generations of export readers, oldest first; the last is
// the current one. A field added to the export needs a new Reader here (the
// tests of package export check that the last one matches the Document),
// and omitempty when its object is known to an earlier one.
var Readers = []Reader{
	{
		Commit: "8a23a49",
		What:   "schema v1 as first written",
		Fields: map[string][]string{
			"": v1Top, "psa": v1PSA, "integration": v1Integration,
			"product_mappings": v1Products, "customer_mappings": v1Customers,
		},
	},
	{
		Commit: "53c55ec",
		What:   "the tickets object (psa_ticket_routing), with all its fields at once",
		Fields: map[string][]string{
			"":    slices.Insert(slices.Clone(v1Top), 5, "tickets"),
			"psa": v1PSA, "integration": v1Integration, "tickets": v1Tickets,
			"product_mappings": v1Products, "customer_mappings": v1Customers,
		},
	},
	{
		Commit: "a429353",
		What:   "next_contract_id of customer mappings (psa_customer_mapping's renewal), written only when set",
		Fields: map[string][]string{
			"":    slices.Insert(slices.Clone(v1Top), 5, "tickets"),
			"psa": v1PSA, "integration": v1Integration, "tickets": v1Tickets,
			"product_mappings": v1Products, "customer_mappings": slices.Insert(slices.Clone(v1Customers), 5, "next_contract_id"),
		},
	},
	{
		Commit: "91b1467",
		What:   "owner of product and customer mappings (an entry taken over by another resource instance), written only when set",
		Fields: map[string][]string{
			"":    slices.Insert(slices.Clone(v1Top), 5, "tickets"),
			"psa": v1PSA, "integration": v1Integration, "tickets": v1Tickets,
			"product_mappings":  append(slices.Clone(v1Products), "owner"),
			"customer_mappings": append(slices.Insert(slices.Clone(v1Customers), 5, "next_contract_id"), "owner"),
		},
	},
	{
		Commit: "de9203e",
		What:   "owner of the integration object (settings taken over by another psa_integration instance), written only when set",
		Fields: map[string][]string{
			"":    slices.Insert(slices.Clone(v1Top), 5, "tickets"),
			"psa": v1PSA, "integration": append(slices.Clone(v1Integration), "owner"), "tickets": v1Tickets,
			"product_mappings":  append(slices.Clone(v1Products), "owner"),
			"customer_mappings": append(slices.Insert(slices.Clone(v1Customers), 5, "next_contract_id"), "owner"),
		},
	},
	{
		Commit: "d67e461",
		What:   "owner of the tickets object (routing taken over by another psa_ticket_routing instance), written only when set",
		Fields: map[string][]string{
			"":    slices.Insert(slices.Clone(v1Top), 5, "tickets"),
			"psa": v1PSA, "integration": append(slices.Clone(v1Integration), "owner"), "tickets": append(slices.Clone(v1Tickets), "owner"),
			"product_mappings":  append(slices.Clone(v1Products), "owner"),
			"customer_mappings": append(slices.Insert(slices.Clone(v1Customers), 5, "next_contract_id"), "owner"),
		},
	},
	{
		Commit: "e2cdbe1",
		What:   "backfill_window of the tickets object (psa_ticket_routing), written only when set",
		Fields: map[string][]string{
			"":    slices.Insert(slices.Clone(v1Top), 5, "tickets"),
			"psa": v1PSA, "integration": append(slices.Clone(v1Integration), "owner"), "tickets": append(slices.Insert(slices.Clone(v1Tickets), 18, "backfill_window"), "owner"),
			"product_mappings":  append(slices.Clone(v1Products), "owner"),
			"customer_mappings": append(slices.Insert(slices.Clone(v1Customers), 5, "next_contract_id"), "owner"),
		},
	},
}

// Unknown returns the fields of the export data that r does not know, as
// "tickets.on_return" or "customer_mappings[3].foo", sorted; nil when r
// reads every field of data. It returns an error when data is not a JSON
// object.
func (r Reader) Unknown(data []byte) ([]string, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("compattest: the export is not a JSON object: %w", err)
	}
	var unknown []string
	r.walk("", "", top, &unknown)
	slices.Sort(unknown)
	return unknown, nil
}

// walk adds to unknown the fields of obj, at path (its key in Fields) and
// named as name in the result, that r does not know, and looks into the
// objects and lists of objects r has field sets for.
func (r Reader) walk(path, name string, obj map[string]json.RawMessage, unknown *[]string) {
	for k, v := range obj {
		full := strings.TrimPrefix(name+"."+k, ".")
		if !slices.Contains(r.Fields[path], k) {
			*unknown = append(*unknown, full)
			continue
		}
		if path != "" {
			continue
		}
		if _, ok := r.Fields[k]; !ok {
			continue
		}
		var sub map[string]json.RawMessage
		if json.Unmarshal(v, &sub) == nil && sub != nil {
			r.walk(k, full, sub, unknown)
			continue
		}
		var list []map[string]json.RawMessage
		if json.Unmarshal(v, &list) == nil {
			for i, e := range list {
				r.walk(k, fmt.Sprintf("%s[%d]", full, i), e, unknown)
			}
		}
	}
}

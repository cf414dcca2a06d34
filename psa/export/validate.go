package export

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/schedule"
)

// maxListedProblems caps the problems ValidationError.Error lists; the rest
// are counted. Problems holds all of them.
const maxListedProblems = 20

// Problem is one thing wrong with a document.
type Problem struct {
	// Entry names the mapping at fault with its index and key, e.g.
	// "customer_mappings[3] (sophos/718b6047)"; empty for document-level
	// fields.
	Entry string
	// Field is the JSON field at fault, e.g. "contract_id" or "psa.system";
	// empty when the entry as a whole is at fault.
	Field string
	// Message completes the sentence that starts with the field, e.g.
	// "is required".
	Message string
}

// String formats p as a line of ValidationError.Error, e.g.
// "customer_mappings[3] (sophos/718b6047): contract_id is required".
func (p Problem) String() string {
	var b strings.Builder
	if p.Entry != "" {
		b.WriteString(p.Entry)
		b.WriteString(": ")
	}
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(" ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// ValidationError reports every problem found in a document. Decode,
// Validate, Store.Read and Store.Update return it; use errors.As to get the
// problems.
type ValidationError struct {
	// File is the path of the export when the document came from a Store.
	File string
	// Problems lists every problem, in document order.
	Problems []Problem
}

// Error lists the problems one per line (the first 20, then a count), or
// gives the only one on the first line.
func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString(prefix(e.File))
	if len(e.Problems) == 1 {
		b.WriteString(e.Problems[0].String())
		return b.String()
	}
	fmt.Fprintf(&b, "%d problems:", len(e.Problems))
	for i, p := range e.Problems {
		if i == maxListedProblems {
			fmt.Fprintf(&b, "\n\t... and %d more", len(e.Problems)-i)
			break
		}
		b.WriteString("\n\t")
		b.WriteString(p.String())
	}
	return b.String()
}

// prefix is how this package's errors start: "export: " for a document in
// memory, `export "path": ` for a file.
func prefix(file string) string {
	if file == "" {
		return "export: "
	}
	return fmt.Sprintf("export %q: ", file)
}

// Validate checks the whole document and returns a *ValidationError listing
// every problem: an unsupported schema version, a missing or unknown PSA
// system, a negative revision, an integration schedule or time zone that
// does not parse, a mapping missing a required field, and two mappings with
// one key.
func (d *Document) Validate() error {
	if p := d.problems(); len(p) > 0 {
		return &ValidationError{Problems: p}
	}
	return nil
}

func (d *Document) problems() []Problem {
	var ps []Problem
	add := func(entry, field, format string, args ...any) {
		ps = append(ps, Problem{Entry: entry, Field: field, Message: fmt.Sprintf(format, args...)})
	}

	supported := quoteAll(SupportedSchemas)
	switch {
	case d.Schema == "":
		add("", "schema", "is required (supported: %s)", supported)
	case !isSupported(d.Schema) && strings.HasPrefix(d.Schema, schemaPrefix):
		add("", "schema", "%q is not a supported version (supported: %s): a newer psa-sync wrote it; upgrade this psa-syncd or provider to one that reads it", d.Schema, supported)
	case !isSupported(d.Schema):
		add("", "schema", "%q is not a supported version (supported: %s)", d.Schema, supported)
	}
	switch {
	case d.PSA.System == "":
		add("", "psa.system", "is required (want %s)", systemList())
	case !d.PSA.System.Valid():
		add("", "psa.system", "%q is not a known PSA system (want %s)", d.PSA.System, systemList())
	}
	if d.Revision < 0 {
		add("", "revision", "must not be negative (got %d)", d.Revision)
	}
	if in := d.Integration; in != nil {
		if in.Schedule != "" {
			if _, err := schedule.Parse(in.Schedule); err != nil {
				add("", "integration.schedule", "is invalid: %v", err)
			}
		}
		if in.Timezone != "" {
			if _, err := schedule.LoadLocation(in.Timezone); err != nil {
				add("", "integration.timezone", "%q is not a usable time zone (want an IANA name such as \"Europe/Rome\" or \"UTC\")", in.Timezone)
			}
		}
		if p := IDProblem(in.Owner); in.Owner != "" && p != "" {
			add("", "integration.owner", "%s", p)
		}
	}

	if d.Tickets != nil {
		d.Tickets.problems(d.PSA.System, add)
	}

	// The entries are named only when they have a problem: a document of
	// a thousand mappings is validated on every write.
	seenProducts := make(map[[2]string]int, len(d.ProductMappings))
	for i, m := range d.ProductMappings {
		entry := func() string { return productEntry(i, m) }
		requiredID(add, entry, "source", m.Source)
		requiredID(add, entry, "product", m.Product)
		requiredID(add, entry, "service_id", m.ServiceID)
		if m.Owner != "" {
			requiredID(add, entry, "owner", m.Owner)
		}
		key := [2]string{m.Source, m.Product}
		if j, dup := seenProducts[key]; dup {
			add(entry(), "", "has the same source and product as product_mappings[%d]", j)
		} else {
			seenProducts[key] = i
		}
	}
	seenCustomers := make(map[[2]string]int, len(d.CustomerMappings))
	for i, m := range d.CustomerMappings {
		entry := func() string { return customerEntry(i, m) }
		requiredID(add, entry, "source", m.Source)
		requiredID(add, entry, "customer_id", m.CustomerID)
		requiredID(add, entry, "company_id", m.CompanyID)
		requiredID(add, entry, "contract_id", m.ContractID)
		if m.NextContractID != "" {
			requiredID(add, entry, "next_contract_id", m.NextContractID)
			if m.NextContractID == m.ContractID {
				add(entry(), "next_contract_id", "is contract_id %q: a renewal is another contract (leave next_contract_id out once contract_id names the renewal)", m.ContractID)
			}
		}
		if m.Owner != "" {
			requiredID(add, entry, "owner", m.Owner)
		}
		key := [2]string{m.Source, m.CustomerID}
		if j, dup := seenCustomers[key]; dup {
			add(entry(), "", "has the same source and customer_id as customer_mappings[%d]", j)
		} else {
			seenCustomers[key] = i
		}
	}
	return ps
}

// CheckIDs checks that every company_id, contract_id and service_id is an
// id of the document's PSA system spelled as the PSA writes it
// (psa.CheckID: decimal digits alone, without sign, spaces or leading
// zeros), and returns a *ValidationError naming each entry and field that
// is not. psa-syncd refuses an export that fails it: the backends would
// read "029684183" as contract 29684183, but the lines they return are
// keyed by "29684183", so a pass would find no line for the mapping and
// post the whole quantity again on every pass. The provider refuses such
// ids at plan time; an export written by hand or by an older provider
// may still hold them.
//
// Validate does not check this: a document may hold placeholders for ids
// known only after a Terraform apply (as the billing-impact report's do).
func (d *Document) CheckIDs() error {
	var ps []Problem
	check := func(entry func() string, field, id string) {
		if err := psa.CheckID(d.PSA.System, id); err != nil {
			ps = append(ps, Problem{Entry: entry(), Field: field, Message: err.Error()})
		}
	}
	for i, m := range d.ProductMappings {
		check(func() string { return productEntry(i, m) }, "service_id", m.ServiceID)
	}
	for i, m := range d.CustomerMappings {
		entry := func() string { return customerEntry(i, m) }
		check(entry, "company_id", m.CompanyID)
		check(entry, "contract_id", m.ContractID)
		if m.NextContractID != "" {
			check(entry, "next_contract_id", m.NextContractID)
		}
	}
	if len(ps) > 0 {
		return &ValidationError{Problems: ps}
	}
	return nil
}

// requiredID checks an id of a mapping (see IDProblem).
func requiredID(add func(entry, field, format string, args ...any), entry func() string, field, value string) {
	if p := IDProblem(value); p != "" {
		add(entry(), field, "%s", p)
	}
}

// IDProblem returns what Validate says of value as a part of a mapping's
// key or one of its ids (source, product, customer_id, service_id,
// company_id, contract_id), completing a sentence that starts with the
// field's name: "is required", or "must not contain a NUL byte", which no
// state database keys a record by (PostgreSQL stores none in text). It
// returns "" for a value Validate accepts. The provider's validators use
// it, so that a plan refuses what the apply's write would.
func IDProblem(value string) string {
	switch {
	case strings.TrimSpace(value) == "":
		return "is required"
	case strings.IndexByte(value, 0) >= 0:
		return "must not contain a NUL byte"
	}
	return ""
}

// productEntry names a product mapping in messages: its index, which finds it
// in the file, and its key, which finds it in Terraform configuration.
func productEntry(i int, m ProductMapping) string {
	return entryName("product_mappings", i, m.Source, m.Product)
}

func customerEntry(i int, m CustomerMapping) string {
	return entryName("customer_mappings", i, m.Source, m.CustomerID)
}

func entryName(list string, i int, source, id string) string {
	name := list + "[" + strconv.Itoa(i) + "]"
	if source == "" && id == "" {
		return name
	}
	return name + " (" + printable(source) + "/" + printable(id) + ")"
}

// printable returns s, with Go escapes for its control characters if it
// has any, so that a message shows them.
func printable(s string) string {
	if !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

func isSupported(schema string) bool {
	for _, s := range SupportedSchemas {
		if s == schema {
			return true
		}
	}
	return false
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

// systemList returns "autotask, connectwise or kaseya_bms".
func systemList() string {
	names := make([]string, len(psa.Systems))
	for i, s := range psa.Systems {
		names[i] = string(s)
	}
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

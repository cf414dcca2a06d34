package export

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// SchemaV1 is the schema identifier of version 1 of the mapping export, the
// only version this package reads and writes.
const SchemaV1 = schemaPrefix + "v1"

// schemaPrefix starts every version's schema identifier.
const schemaPrefix = "psa-sync.mapping-export/"

// SupportedSchemas lists the schema versions Decode accepts.
var SupportedSchemas = []string{SchemaV1}

// Document is a mapping export: the product and customer mappings of one PSA
// instance, written by the Terraform provider and read by psa-syncd. It holds
// no credentials and has no field that could hold one.
//
// A Document is not safe for concurrent use; Store.Update gives each caller
// its own copy.
type Document struct {
	// Schema is SchemaV1.
	Schema string `json:"schema"`
	// PSA names the PSA system and instance the mappings belong to.
	PSA PSA `json:"psa"`
	// Revision increases by one on every write through a Store.
	Revision int64 `json:"revision"`
	// UpdatedAt is the time of the last write through a Store, in UTC.
	UpdatedAt time.Time `json:"updated_at"`
	// Integration holds the integration-wide settings; nil when no
	// psa_integration resource manages them (the daemon's configuration
	// then applies).
	Integration *Integration `json:"integration,omitempty"`
	// Tickets is the ticket routing; nil when no psa_ticket_routing
	// resource manages it (psa-syncd then creates no tickets). Documents
	// written before ticket sync have none.
	Tickets *Tickets `json:"tickets,omitempty"`
	// ProductMappings are keyed by (Source, Product).
	ProductMappings []ProductMapping `json:"product_mappings"`
	// CustomerMappings are keyed by (Source, CustomerID).
	CustomerMappings []CustomerMapping `json:"customer_mappings"`
}

// PSA identifies the PSA a document belongs to.
type PSA struct {
	// System is the PSA system; a document belongs to exactly one.
	System psa.System `json:"system"`
	// Instance tells instances of one system apart: for Autotask the
	// tenant at its zone host, "ci:29683541@webservices5.autotask.net" (the
	// CI is the company identifier zone discovery reports; a zone host
	// serves many tenants), or the zone host alone when the base URL is
	// configured; the ConnectWise login company at its site host,
	// "company:msp@api-na.myconnectwise.net"; the Kaseya BMS tenant at its
	// API host, "tenant:Acme MSP@api.bmsemea.kaseya.com" (a host serves many
	// companies or tenants in both). It may be empty. SameInstance compares
	// two.
	Instance string `json:"instance"`
}

// Integration holds the integration-wide settings of psa_integration.
type Integration struct {
	// Enabled false means the daemon sends nothing to the PSA.
	Enabled bool `json:"enabled"`
	// Schedule is a schedule in the grammar of package schedule; empty
	// means the daemon's configured schedule.
	Schedule string `json:"schedule"`
	// Timezone is an IANA zone name for calendar schedules; empty means the
	// daemon's configured zone.
	Timezone string `json:"timezone"`
	// Owner is the token of the psa_integration resource instance that
	// holds the settings, when it took them over from another or wrote
	// them into a document that holds owners (see CustomerMapping.Owner);
	// empty otherwise.
	Owner string `json:"owner,omitempty"`
}

// ProductMapping maps a vendor product to a PSA service.
type ProductMapping struct {
	// Source is the usage source, e.g. "sophos". Part of the key.
	Source string `json:"source"`
	// Product is the vendor's product code. Part of the key.
	Product string `json:"product"`
	// ServiceID is the PSA service the product is billed as.
	ServiceID string `json:"service_id"`
	// ServiceName is the service's name, for people reading the export.
	ServiceName string `json:"service_name"`
	// SyncEnabled false keeps the mapping but stops usage sync for it.
	SyncEnabled bool `json:"sync_enabled"`
	// Owner is the token of the Terraform resource instance that holds
	// the entry, when another instance held it before or the document
	// holds owners (see CustomerMapping.Owner); empty otherwise.
	Owner string `json:"owner,omitempty"`
}

// CustomerMapping maps a vendor customer (tenant) to a PSA company and one of
// its contracts.
type CustomerMapping struct {
	// Source is the usage source, e.g. "sophos". Part of the key.
	Source string `json:"source"`
	// CustomerID is the vendor's customer or tenant id. Part of the key.
	CustomerID string `json:"customer_id"`
	// CustomerName is the vendor's customer name, for people reading the
	// export.
	CustomerName string `json:"customer_name"`
	// CompanyID is the PSA company.
	CompanyID string `json:"company_id"`
	// ContractID is the company's PSA contract the usage is billed on.
	ContractID string `json:"contract_id"`
	// NextContractID, when set, is the company's contract that follows
	// ContractID (an annual renewal under a new id): psa-syncd bills a pass
	// on it when the pass's effective date is on or after its start, or
	// after ContractID's end, and on ContractID before. Written only when
	// set, so that psa-syncd versions without renewals read exports
	// without one.
	NextContractID string `json:"next_contract_id,omitempty"`
	// UsageSync switches usage sync on for the customer.
	UsageSync bool `json:"usage_sync"`
	// TicketSync switches ticket sync on for the customer.
	TicketSync bool `json:"ticket_sync"`
	// Owner is the token of the Terraform resource instance that holds
	// the entry, set when an instance takes the entry over from another
	// (a create_before_destroy replacement, a resource moved without a
	// moved block): the destroy of the old instance, in that apply or in a
	// later one after the apply stopped, then leaves the entry alone. The
	// provider writes it then, and on every entry it writes once the
	// document holds any owner (or with export_owner_tokens); psa-syncd
	// ignores it. Empty for an entry written by the instance that created
	// it while the document held no owner, so that psa-syncd versions
	// before owners read exports without hand-overs.
	Owner string `json:"owner,omitempty"`
}

// New returns an empty document for a PSA instance, at revision 0.
func New(system psa.System, instance string) *Document {
	return &Document{
		Schema:           SchemaV1,
		PSA:              PSA{System: system, Instance: instance},
		ProductMappings:  []ProductMapping{},
		CustomerMappings: []CustomerMapping{},
	}
}

// Clone returns a deep copy of d.
func (d *Document) Clone() *Document {
	c := *d
	if d.Integration != nil {
		i := *d.Integration
		c.Integration = &i
	}
	if d.Tickets != nil {
		c.Tickets = d.Tickets.clone()
	}
	c.ProductMappings = append([]ProductMapping{}, d.ProductMappings...)
	c.CustomerMappings = append([]CustomerMapping{}, d.CustomerMappings...)
	return &c
}

// Product returns the product mapping with the given key.
func (d *Document) Product(source, product string) (ProductMapping, bool) {
	if i := d.productIndex(source, product); i >= 0 {
		return d.ProductMappings[i], true
	}
	return ProductMapping{}, false
}

// PutProduct adds m, or replaces the mapping with m's key.
func (d *Document) PutProduct(m ProductMapping) {
	if i := d.productIndex(m.Source, m.Product); i >= 0 {
		d.ProductMappings[i] = m
		return
	}
	d.ProductMappings = append(d.ProductMappings, m)
}

// DeleteProduct removes the product mapping with the given key and reports
// whether there was one.
func (d *Document) DeleteProduct(source, product string) bool {
	i := d.productIndex(source, product)
	if i < 0 {
		return false
	}
	d.ProductMappings = slices.Delete(d.ProductMappings, i, i+1)
	return true
}

func (d *Document) productIndex(source, product string) int {
	return slices.IndexFunc(d.ProductMappings, func(m ProductMapping) bool {
		return m.Source == source && m.Product == product
	})
}

// Customer returns the customer mapping with the given key.
func (d *Document) Customer(source, customerID string) (CustomerMapping, bool) {
	if i := d.customerIndex(source, customerID); i >= 0 {
		return d.CustomerMappings[i], true
	}
	return CustomerMapping{}, false
}

// PutCustomer adds m, or replaces the mapping with m's key.
func (d *Document) PutCustomer(m CustomerMapping) {
	if i := d.customerIndex(m.Source, m.CustomerID); i >= 0 {
		d.CustomerMappings[i] = m
		return
	}
	d.CustomerMappings = append(d.CustomerMappings, m)
}

// DeleteCustomer removes the customer mapping with the given key and reports
// whether there was one.
func (d *Document) DeleteCustomer(source, customerID string) bool {
	i := d.customerIndex(source, customerID)
	if i < 0 {
		return false
	}
	d.CustomerMappings = slices.Delete(d.CustomerMappings, i, i+1)
	return true
}

func (d *Document) customerIndex(source, customerID string) int {
	return slices.IndexFunc(d.CustomerMappings, func(m CustomerMapping) bool {
		return m.Source == source && m.CustomerID == customerID
	})
}

func compareProducts(a, b ProductMapping) int {
	return cmp.Or(cmp.Compare(a.Source, b.Source), cmp.Compare(a.Product, b.Product))
}

func compareCustomers(a, b CustomerMapping) int {
	return cmp.Or(cmp.Compare(a.Source, b.Source), cmp.Compare(a.CustomerID, b.CustomerID))
}

// Encode returns the document as JSON with the mappings sorted by key,
// two-space indentation and a trailing newline. Equal documents encode to
// equal bytes, so the file diffs well in reviews. UpdatedAt is written in
// UTC. Encode does not validate and does not modify d.
func (d *Document) Encode() ([]byte, error) {
	c := *d // the mappings are copied only to be sorted
	c.UpdatedAt = c.UpdatedAt.UTC()
	c.ProductMappings = sortedCopy(c.ProductMappings, compareProducts)
	c.CustomerMappings = sortedCopy(c.CustomerMappings, compareCustomers)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("export: encoding: %w", err)
	}
	compact := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	out := indent(make([]byte, 0, 2*len(compact)), compact)
	return append(out, '\n'), nil
}

// sortedCopy returns s sorted by compare, stably: s itself when it is
// sorted already, as the mappings of a decoded export are.
func sortedCopy[T any](s []T, compare func(a, b T) int) []T {
	if slices.IsSortedFunc(s, compare) {
		return s
	}
	s = slices.Clone(s)
	slices.SortStableFunc(s, compare)
	return s
}

// indent appends src, compact JSON as encoding/json writes it, to dst with
// two-space indentation: the bytes json.Indent(dst, src, "", "  ") writes.
// The export is written on every commit of an apply, and json.Indent's
// byte-by-byte scanner was most of the time an encoding took.
func indent(dst, src []byte) []byte {
	depth := 0
	newline := func() {
		dst = append(dst, '\n')
		for range depth {
			dst = append(dst, "  "...)
		}
	}
	for i := 0; i < len(src); i++ {
		switch c := src[i]; c {
		case '"':
			end := i + 1
			for end < len(src) && src[end] != '"' {
				if src[end] == '\\' {
					end++
				}
				end++
			}
			dst = append(dst, src[i:min(end+1, len(src))]...)
			i = end
		case '{', '[':
			if i+1 < len(src) && (src[i+1] == '}' || src[i+1] == ']') {
				dst = append(dst, c, src[i+1])
				i++
				continue
			}
			dst = append(dst, c)
			depth++
			newline()
		case '}', ']':
			depth--
			newline()
			dst = append(dst, c)
		case ',':
			dst = append(dst, c)
			newline()
		case ':':
			dst = append(dst, c, ' ')
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// contentEqual reports whether a and b hold the same settings and mappings,
// ignoring Revision and UpdatedAt and the order of the mappings: whether
// writing b over a would change what the export says. It compares the
// values rather than their encodings, which a commit of a thousand mappings
// would spend most of its time on.
func contentEqual(a, b *Document) bool {
	return a.Schema == b.Schema && a.PSA == b.PSA &&
		equalPointers(a.Integration, b.Integration, func(x, y *Integration) bool { return *x == *y }) &&
		equalPointers(a.Tickets, b.Tickets, (*Tickets).equal) &&
		sameEntries(a.ProductMappings, b.ProductMappings, compareProducts) &&
		sameEntries(a.CustomerMappings, b.CustomerMappings, compareCustomers)
}

// equalPointers reports whether a and b are both nil, or both not nil and
// equal.
func equalPointers[T any](a, b *T, equal func(a, b *T) bool) bool {
	if a == nil || b == nil {
		return a == b
	}
	return equal(a, b)
}

// sameEntries reports whether a and b hold the same mappings in any order.
func sameEntries[T comparable](a, b []T, compare func(a, b T) int) bool {
	if len(a) != len(b) {
		return false
	}
	if slices.Equal(a, b) {
		return true
	}
	a, b = slices.Clone(a), slices.Clone(b)
	slices.SortFunc(a, compare)
	slices.SortFunc(b, compare)
	return slices.Equal(a, b)
}

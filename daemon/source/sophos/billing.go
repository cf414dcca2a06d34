package sophos

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// BillingService reads /partner/v1/billing.
type BillingService service

// UsageItem is one row of a monthly usage report: one order line of one
// account. Several rows can share an (AccountID, ProductCode).
type UsageItem struct {
	AccountID                   string `json:"accountId"`
	ExternalID                  string `json:"externalId,omitempty"`
	AccountStatus               string `json:"accountStatus,omitempty"`
	AccountNumberOrSerialNumber string `json:"accountNumberOrSerialNumber,omitempty"`
	AssignedAccountIdentifier   string `json:"assignedAccountIdentifier,omitempty"`
	AccountType                 string `json:"accountType,omitempty"`
	PartnerAccountID            string `json:"partnerAccountId,omitempty"`
	PartnerEdiAccountNumber     string `json:"partnerEdiAccountNumber,omitempty"`
	PartnerAccountName          string `json:"partnerAccountName,omitempty"`
	OrderNumber                 string `json:"orderNumber,omitempty"`
	OrderLineItemNumber         string `json:"orderLineItemNumber,omitempty"`
	BillingStartDate            string `json:"billingStartDate,omitempty"`
	BillingEndDate              string `json:"billingEndDate,omitempty"`
	ProductCode                 string `json:"productCode"`
	SKU                         string `json:"sku,omitempty"`
	ProductDescription          string `json:"productDescription,omitempty"`
	ProductGroup                string `json:"productGroup,omitempty"`
	// BillableQuantity is nil when the row has none (absent or null).
	BillableQuantity *float64 `json:"billableQuantity"`
	ActualQuantity   float64  `json:"actualQuantity,omitempty"`

	// Err is set when the row could not be decoded as a whole (a field of
	// the wrong type, an item that is not an object). The string fields
	// that could be read on their own, such as AccountID and ProductCode,
	// are set; the others are zero.
	Err error `json:"-"`
}

// decodeUsageItem decodes one row of the report. A row that does not decode
// is returned with Err set and what could be read of it.
func decodeUsageItem(raw json.RawMessage) *UsageItem {
	if string(bytes.TrimSpace(raw)) == "null" {
		// json.Unmarshal takes null for an empty row, which would be
		// usage of no customer, only reported; like any item that is not
		// an object, it could have been any customer's row.
		return &UsageItem{Err: errors.New("the item is null, not an object")}
	}
	var it UsageItem
	err := json.Unmarshal(raw, &it)
	if err == nil {
		return &it
	}
	it = UsageItem{Err: err}
	f := lenientFieldsOf(raw)
	it.AccountID = f.str("accountId")
	it.AccountType = f.str("accountType")
	it.PartnerAccountID = f.str("partnerAccountId")
	it.AccountNumberOrSerialNumber = f.str("accountNumberOrSerialNumber")
	it.AssignedAccountIdentifier = f.str("assignedAccountIdentifier")
	it.OrderLineItemNumber = f.str("orderLineItemNumber")
	it.ProductCode = f.str("productCode")
	it.ProductDescription = f.str("productDescription")
	return &it
}

// UsageListOptions are the query parameters of the usage report.
type UsageListOptions struct {
	// PageSize is the page size; 0 leaves it to the API (50, at most 1000).
	PageSize int
	// PageFromKey is the key of the page to fetch (the previous page's
	// nextKey); "" for the first page.
	PageFromKey string
	// PageTotal asks the API to count pages and items.
	PageTotal bool
	// AccountID limits the report to one tenant.
	AccountID string
	// ContactEmail limits the report to tenants with this contact email.
	ContactEmail string
	// Fields limits the returned fields (partial response).
	Fields []string
}

func (o *UsageListOptions) values() url.Values {
	v := url.Values{}
	if o == nil {
		return v
	}
	if o.PageSize > 0 {
		v.Set("pageSize", strconv.Itoa(o.PageSize))
	}
	if o.PageFromKey != "" {
		v.Set("pageFromKey", o.PageFromKey)
	}
	if o.PageTotal {
		v.Set("pageTotal", "true")
	}
	if o.AccountID != "" {
		v.Set("accountId", o.AccountID)
	}
	if o.ContactEmail != "" {
		v.Set("contactEmail", o.ContactEmail)
	}
	if len(o.Fields) > 0 {
		v.Set("fields", strings.Join(o.Fields, ","))
	}
	return v
}

func usagePath(year int, month time.Month) string {
	return fmt.Sprintf("partner/v1/billing/usage/%d/%d", year, int(month))
}

// GetUsage returns one page of the usage report for a month.
// Response.NextKey is the key of the next page, "" on the last. A month
// without a report yet is an *ErrorResponse with status 404 (errors.Is
// psa.ErrNotFound). Each row is decoded on its own: one that does not
// decode is returned with Err set (see UsageItem), so that one bad row does
// not hide the others; an items field that is not a list is an error.
func (s *BillingService) GetUsage(ctx context.Context, year int, month time.Month, opts *UsageListOptions) ([]*UsageItem, *Response, error) {
	req, err := s.client.newPartnerRequest(ctx, usagePath(year, month), opts.values())
	if err != nil {
		return nil, nil, err
	}
	var env listEnvelope
	resp, err := s.client.Do(req, &env)
	if err != nil {
		return nil, resp, err
	}
	var raws []json.RawMessage
	if err := decodeItems(env.Items, &raws); err != nil {
		return nil, resp, fmt.Errorf("sophos: %s: decoding items: %w", endpoint(req), err)
	}
	items := make([]*UsageItem, len(raws))
	for i, raw := range raws {
		items[i] = decodeUsageItem(raw)
	}
	resp.Pages = env.Pages
	resp.NextKey = env.Pages.NextKey
	return items, resp, nil
}

// defaultMaxUsagePages bounds the pages ListAllUsage reads of one report,
// whether or not the report announced its number of pages: 10,000 pages
// hold 10 million rows at the API's largest page size. A listing that goes
// on past it is an error rather than a loop without end.
const defaultMaxUsagePages = 10000

// defaultMaxUsageRows bounds the rows ListAllUsage holds of one report,
// which it keeps whole until the report is read: a million rows are some
// 1 GiB, a hundred times the rows of a partner with 10,000 tenants of ten
// order lines each. The page bound alone allows 10 million, and the 64 MiB
// bound on an answer only bounds a page. A report that announces more, or
// whose pages hold more, fails at once with an error saying so, rather
// than take the memory of the host.
const defaultMaxUsageRows = 1_000_000

// ListAllUsage returns every row of the month's report, following nextKey.
// opts.PageFromKey is ignored; the first request asks for pageTotal. A 404
// on the first page (no report for the month yet) is returned as is, so
// errors.Is(err, psa.ErrNotFound) tells it apart.
//
// The listing is complete or an error, never a partial or doubled list:
// when the first page announces the number of rows (pages.items), a listing
// that returns another number of rows fails, naming both; when it announces
// only the number of pages (pages.total), a listing that ends before that
// many pages, or still points to another page after them, fails. The pages
// stop after the announced number even when the server hands out more keys.
// A nextKey that repeats, a page whose rows repeat the previous page's,
// more than 10,000 pages and more than a million rows (announced or held)
// fail too. A report of more than one page is read again, and used only
// once two readings in a row hold the same rows: rows added or removed
// while the pages are read shift them, so that one row is on two pages or
// on none, and a single reading cannot tell the second. Up to three
// readings, then an error; a 404 at a later reading is an error that
// does not match psa.ErrNotFound. A report of one page (1,000 rows at the default
// page size) is read once.
func (s *BillingService) ListAllUsage(ctx context.Context, year int, month time.Month, opts *UsageListOptions) ([]*UsageItem, error) {
	items, pages, digest, err := s.listAllUsage(ctx, year, month, opts)
	if err != nil || pages == 1 {
		return items, err
	}
	// A row inserted before the next page's key while the pages are read
	// shifts them forward: a row of an earlier page is again on a later
	// one. A row removed there shifts them back: the next page's first row
	// is on no page, and with a row added after the last page meanwhile
	// the count is still as announced. Either way a tenant's usage is too
	// low; only another reading that agrees rules both out. A repeat in
	// two readings that agree is the report's own (Source.Fetch fails its
	// tenant for it). Only the digest of the reading before is kept, not
	// its rows, so that a large report is held once.
	for range maxUsageReadings - 1 {
		again, _, againDigest, err := s.listAllUsage(ctx, year, month, opts)
		if errors.Is(err, psa.ErrNotFound) {
			// The report was there a moment ago: a 404 now is no month
			// without a report (Source.Fetch reads Sophos's "no data"
			// as one, and bills nothing), so it is not wrapped.
			return nil, fmt.Errorf("sophos: GET /%s (usage of %04d-%02d): read once, then answered: %v; the report changed while it was read, so not using it",
				usagePath(year, month), year, int(month), err)
		}
		if err != nil {
			return nil, err
		}
		if againDigest == digest {
			return again, nil
		}
		digest = againDigest
	}
	return nil, fmt.Errorf("sophos: GET /%s (usage of %04d-%02d): the rows of its %d pages changed between each of %d readings, and no two readings in a row held the same rows: "+
		"the report changed while it was read, so some tenant's row may be on no page, or on two; not using it", usagePath(year, month), year, int(month), pages, maxUsageReadings)
}

// maxUsageReadings is how many times ListAllUsage reads a report of more
// than one page at most, waiting for two readings in a row that agree.
const maxUsageReadings = 3

// listAllUsage reads the report once for ListAllUsage, and returns its
// number of pages and a digest of its rows, which two readings of the same
// rows share whatever their order (see usageDigest).
func (s *BillingService) listAllUsage(ctx context.Context, year int, month time.Month, opts *UsageListOptions) ([]*UsageItem, int, usageDigest, error) {
	o := UsageListOptions{PageTotal: true}
	if opts != nil {
		o = *opts
		o.PageTotal = true
	}
	o.PageFromKey = ""
	where := fmt.Sprintf("sophos: GET /%s (usage of %04d-%02d)", usagePath(year, month), year, int(month))
	seen := map[string]bool{}
	var (
		all          []*UsageItem
		first        Pages
		prev         []*UsageItem
		digest, none usageDigest
	)
	for page := 1; ; page++ {
		if page > s.client.maxUsagePages {
			return nil, 0, none, fmt.Errorf("%s: more than %d pages; stopping rather than reading on", where, s.client.maxUsagePages)
		}
		items, resp, err := s.GetUsage(ctx, year, month, &o)
		if err != nil && o.PageFromKey != "" && errors.Is(err, psa.ErrNotFound) {
			// Only a 404 on the first page means "no report for this month";
			// later it means the report changed under us.
			return nil, 0, none, fmt.Errorf("%s: page %q is gone (404); the report changed while it was read", where, o.PageFromKey)
		}
		if err != nil {
			return nil, 0, none, err
		}
		source.PageRead(ctx)
		if page == 1 {
			first = resp.Pages
			if n, ok := first.AnnouncedItems(); ok && n > s.client.maxUsageRows {
				return nil, 0, none, fmt.Errorf("%s: the report announces %d rows, more than the %d psa-syncd reads of one month's usage; not reading it", where, n, s.client.maxUsageRows)
			}
		} else if len(items) > 0 && reflect.DeepEqual(items, prev) {
			return nil, 0, none, fmt.Errorf("%s: page %d (key %q) repeats the rows of page %d; the server does not follow pageFromKey, and counting them twice would double the usage", where, page, o.PageFromKey, page-1)
		}
		for _, it := range items {
			if err := digest.add(it); err != nil {
				return nil, 0, none, fmt.Errorf("%s: %w", where, err)
			}
		}
		all = append(all, items...)
		if len(all) > s.client.maxUsageRows {
			return nil, 0, none, fmt.Errorf("%s: the report's first %d pages hold more than the %d rows psa-syncd reads of one month's usage; stopping rather than reading on", where, page, s.client.maxUsageRows)
		}
		prev = items
		total, totalSent := first.AnnouncedTotal()
		if resp.NextKey != "" && (!totalSent || page < total) {
			if seen[resp.NextKey] {
				return nil, 0, none, fmt.Errorf("%s: nextKey %q repeats; stopping rather than looping", where, resp.NextKey)
			}
			seen[resp.NextKey] = true
			o.PageFromKey = resp.NextKey
			o.PageTotal = false
			continue
		}
		// The last page: the one without a nextKey, or the last one the
		// first page announced.
		if n, ok := first.AnnouncedItems(); ok {
			if len(all) != n {
				return nil, 0, none, fmt.Errorf("%s: the report announced %d rows and its %d pages held %d; not using a partial or repeated listing", where, n, page, len(all))
			}
			return all, page, digest, nil
		}
		if totalSent && page < total {
			return nil, 0, none, fmt.Errorf("%s: the report announced %d pages and the listing ended after %d; not using a partial listing", where, total, page)
		}
		if totalSent && resp.NextKey != "" {
			return nil, 0, none, fmt.Errorf("%s: the report announced %d pages and page %d still points to another; not using a listing of unknown length", where, total, page)
		}
		return all, page, digest, nil
	}
}

// usageDigest is a digest of the rows of a reading: the sum, lane by lane,
// of a SHA-256 of each row, so that the same rows give the same digest
// whatever their order (a server may sort rows of equal keys otherwise at
// each reading), while a row missing, added or on two pages changes it.
// What is hashed of a row is what psa-syncd reads of it, in the order of
// UsageItem's fields, and why it could not be decoded, if it could not: a
// row sent with its keys in another order, or with other fields that
// psa-syncd does not read, is the same row.
type usageDigest [4]uint64

func (d *usageDigest) add(it *UsageItem) error {
	b, err := json.Marshal(it)
	if err != nil {
		return fmt.Errorf("digesting a row: %w", err)
	}
	if it.Err != nil {
		b = fmt.Appendf(b, " %q", it.Err.Error())
	}
	h := sha256.Sum256(b)
	for i := range d {
		d[i] += binary.BigEndian.Uint64(h[8*i:])
	}
	return nil
}

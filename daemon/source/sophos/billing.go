package sophos

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// BillingService reads /partner/v1/billing.
type BillingService service

// UsageItem is one row of a monthly usage report: one order line of one
// account. Several rows can share an (AccountID, ProductCode).
type UsageItem struct {
	AccountID                   string  `json:"accountId"`
	ExternalID                  string  `json:"externalId,omitempty"`
	AccountStatus               string  `json:"accountStatus,omitempty"`
	AccountNumberOrSerialNumber string  `json:"accountNumberOrSerialNumber,omitempty"`
	AssignedAccountIdentifier   string  `json:"assignedAccountIdentifier,omitempty"`
	AccountType                 string  `json:"accountType,omitempty"`
	PartnerAccountID            string  `json:"partnerAccountId,omitempty"`
	PartnerEdiAccountNumber     string  `json:"partnerEdiAccountNumber,omitempty"`
	PartnerAccountName          string  `json:"partnerAccountName,omitempty"`
	OrderNumber                 string  `json:"orderNumber,omitempty"`
	OrderLineItemNumber         string  `json:"orderLineItemNumber,omitempty"`
	BillingStartDate            string  `json:"billingStartDate,omitempty"`
	BillingEndDate              string  `json:"billingEndDate,omitempty"`
	ProductCode                 string  `json:"productCode"`
	SKU                         string  `json:"sku,omitempty"`
	ProductDescription          string  `json:"productDescription,omitempty"`
	ProductGroup                string  `json:"productGroup,omitempty"`
	BillableQuantity            float64 `json:"billableQuantity"`
	ActualQuantity              float64 `json:"actualQuantity,omitempty"`
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
// psa.ErrNotFound).
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
	var items []*UsageItem
	if err := decodeItems(env.Items, &items); err != nil {
		return nil, resp, fmt.Errorf("sophos: %s: decoding items: %w", endpoint(req), err)
	}
	resp.Pages = env.Pages
	resp.NextKey = env.Pages.NextKey
	return items, resp, nil
}

// ListAllUsage returns every row of the month's report, following nextKey.
// opts.PageFromKey is ignored; the first request asks for pageTotal. A 404
// on the first page (no report for the month yet) is returned as is, so
// errors.Is(err, psa.ErrNotFound) tells it apart.
func (s *BillingService) ListAllUsage(ctx context.Context, year int, month time.Month, opts *UsageListOptions) ([]*UsageItem, error) {
	o := UsageListOptions{PageTotal: true}
	if opts != nil {
		o = *opts
		o.PageTotal = true
	}
	o.PageFromKey = ""
	seen := map[string]bool{}
	var all []*UsageItem
	for {
		items, resp, err := s.GetUsage(ctx, year, month, &o)
		if err != nil && o.PageFromKey != "" && errors.Is(err, psa.ErrNotFound) {
			// Only a 404 on the first page means "no report for this month";
			// later it means the report changed under us.
			return nil, fmt.Errorf("sophos: GET /%s: page %q is gone (404); the report changed while it was read", usagePath(year, month), o.PageFromKey)
		}
		if err != nil {
			return nil, err
		}
		all = append(all, items...)
		if resp.NextKey == "" {
			return all, nil
		}
		if seen[resp.NextKey] {
			return nil, fmt.Errorf("sophos: GET /%s: nextKey %q repeats; stopping rather than looping", usagePath(year, month), resp.NextKey)
		}
		seen[resp.NextKey] = true
		o.PageFromKey = resp.NextKey
		o.PageTotal = false
	}
}

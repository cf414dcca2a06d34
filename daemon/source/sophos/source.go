package sophos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strings"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// Name is the source name of Sophos usage in the mapping export.
const Name = "sophos"

// Config configures a Sophos usage source.
type Config struct {
	// ClientID and ClientSecret are a Sophos Central Partner API credential.
	ClientID     string
	ClientSecret string
	// AuthURL overrides the token endpoint; "" means DefaultAuthURL.
	AuthURL string
	// APIURL overrides the API host; "" means DefaultBaseURL, and then the
	// partner calls go to the global host whoami names.
	APIURL string
	// HTTPClient sends every request; nil means a client with a 60 s timeout.
	HTTPClient *http.Client
	// MaxRetries is how often a read is retried after 429, 5xx or a network
	// error; 0 disables retries; callers pass DefaultMaxRetries when the user
	// said nothing.
	MaxRetries int
	// UserAgent is sent with every request; "" means "psa-sync".
	UserAgent string
	// PageSize is the usage page size; 0 means 1000, the API's maximum.
	PageSize int
	// Logger logs retries; nil means discard.
	Logger *slog.Logger
}

// String describes the configuration without the client secret.
func (c Config) String() string {
	secret := ""
	if c.ClientSecret != "" {
		secret = "[redacted]"
	}
	return fmt.Sprintf("sophos.Config{ClientID: %q, ClientSecret: %q, AuthURL: %q, APIURL: %q, MaxRetries: %d, PageSize: %d}",
		c.ClientID, secret, c.AuthURL, c.APIURL, c.MaxRetries, c.PageSize)
}

// GoString is String, so %#v does not print the secret either.
func (c Config) GoString() string { return c.String() }

// LogValue logs the configuration without the client secret.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("client_id", c.ClientID),
		slog.String("auth_url", c.AuthURL),
		slog.String("api_url", c.APIURL),
	)
}

// Source is the Sophos Central Partner usage source. It is safe for
// concurrent use.
type Source struct {
	client   *Client
	pageSize int
}

var (
	_ source.Source    = (*Source)(nil)
	_ source.Describer = (*Source)(nil)
)

// New builds a Source from cfg. It does no network I/O.
func New(cfg Config) (*Source, error) {
	opts := []Option{
		WithCredentials(cfg.ClientID, cfg.ClientSecret),
		WithHTTPClient(cfg.HTTPClient),
		WithMaxRetries(cfg.MaxRetries),
		WithUserAgent(cfg.UserAgent),
		WithLogger(cfg.Logger),
	}
	if cfg.AuthURL != "" {
		opts = append(opts, WithAuthURL(cfg.AuthURL))
	}
	if cfg.APIURL != "" {
		opts = append(opts, WithBaseURL(cfg.APIURL))
	}
	c, err := NewClient(opts...)
	if err != nil {
		return nil, err
	}
	s := NewSource(c)
	if cfg.PageSize > 0 {
		s.pageSize = cfg.PageSize
	}
	return s, nil
}

// NewSource returns a Source that reads through c.
func NewSource(c *Client) *Source {
	return &Source{client: c, pageSize: 1000}
}

// Client returns the API client the source uses.
func (s *Source) Client() *Client { return s.client }

// ForgetRefusals drops its client's holds after a refused token (see
// Client.ForgetRefusals).
func (s *Source) ForgetRefusals() int { return s.client.ForgetRefusals() }

// Name returns "sophos".
func (s *Source) Name() string { return Name }

// Fetch reads the partner's usage report for p and returns one record per
// (accountId, productCode) with billableQuantity summed over the report's
// rows, named after the tenant. Usage that belongs to no customer tenant
// (see the package documentation) becomes a record with an empty CustomerID.
// Rows without a productCode, without a billableQuantity (or null), with a
// quantity that is not a whole, non-negative number, that repeat an
// earlier row's order line (see orderLines), or that do not decode, are
// skipped and listed as problems; those of a customer tenant are
// Unreadable, so that the engine does not sync that tenant on partial
// usage, and a row that does not decode and whose accountId cannot be read
// is Unreadable with no CustomerID (any customer's). A tenant list that
// cannot be read is a notice, not an error: it only names the customers.
// When Sophos has no report for p yet (404 with its "No data for
// requested year or month" message), the report is empty and has one
// problem wrapping ErrNoData; that is not an error. Any other 404 is.
func (s *Source) Fetch(ctx context.Context, p source.Period) (*source.Report, error) {
	rep := &source.Report{Source: Name, Period: p}
	partnerID, err := s.client.PartnerID(ctx)
	if err != nil {
		return nil, err
	}
	items, err := s.client.Billing.ListAllUsage(ctx, p.Year, p.Month, &UsageListOptions{PageSize: s.pageSize})
	if er := (*ErrorResponse)(nil); errors.As(err, &er) && er.noData() {
		rep.Problems = append(rep.Problems, source.Problem{Where: fmt.Sprintf("sophos usage %s", p), Err: ErrNoData})
		return rep, nil
	}
	if errors.Is(err, psa.ErrNotFound) {
		return nil, fmt.Errorf("%w; not Sophos's answer for a month without a report (\"No data for requested year or month\"), so not read as one: "+
			"a proxy or a wrong api_url answers, or the partner is not on monthly (MSP Flex) billing, which the usage report needs", err)
	}
	if err != nil {
		return nil, err
	}
	var names map[string]string
	if len(items) > 0 {
		// The list names the customers and tells a mapped tenant that
		// has no row (listed, no usage) from one that is gone; a report
		// without rows has no customer to tell, so it reads no list.
		names, err = s.tenantNames(ctx, rep)
		if err != nil {
			return nil, err
		}
	}
	var recs []source.Record
	lines := orderLines{}
	for i, it := range items {
		rec, err := record(it, partnerID, names, p)
		if err == nil {
			err = lines.repeat(i, it)
		}
		if err != nil {
			pr := source.Problem{Where: itemWhere(p, i, it), Err: err, Product: strings.TrimSpace(it.ProductCode)}
			switch {
			case it.Err != nil && strings.TrimSpace(it.AccountID) == "" && !strings.EqualFold(it.AccountType, "partner"):
				// A row that does not decode and whose accountId cannot
				// be read could be any tenant's: the engine then syncs
				// no customer this pass.
				pr.Unreadable = true
			case !unassigned(it, partnerID):
				// A tenant's item that cannot be read holds that
				// tenant's sync; the partner's own usage is never
				// billed anyway.
				pr.Unreadable, pr.CustomerID = true, strings.TrimSpace(it.AccountID)
			}
			rep.Problems = append(rep.Problems, pr)
			continue
		}
		recs = append(recs, rec)
	}
	var overflows []source.Problem
	rep.Records, overflows = source.Sum(recs)
	rep.Problems = append(rep.Problems, overflows...)
	return rep, nil
}

// orderLines remembers the order lines of a report's rows, by account,
// order line, product and billing dates, with the index of the first row of
// each.
type orderLines map[[5]string]int

// repeat returns an error when row i repeats an earlier row's order line of
// the same product and billing dates: one order line is one row of usage
// (a line split by billing dates is several), so the second is the same
// usage listed twice, and summing both would double it. Rows without an
// order line number are not compared.
func (o orderLines) repeat(i int, it *UsageItem) error {
	k, ok := orderLineKey(it)
	if !ok {
		return nil
	}
	if first, ok := o[k]; ok {
		return fmt.Errorf("repeats item %d (order line %s of product %s, the same billing dates): counting both would double the usage", first+1, k[1], k[2])
	}
	o[k] = i
	return nil
}

// orderLineKey returns the row's account, order line, product and billing
// dates, which name one row of usage; false when it has no order line
// number.
func orderLineKey(it *UsageItem) ([5]string, bool) {
	line := strings.TrimSpace(it.OrderLineItemNumber)
	if line == "" {
		return [5]string{}, false
	}
	return [5]string{strings.TrimSpace(it.AccountID), line, strings.TrimSpace(it.ProductCode), it.BillingStartDate, it.BillingEndDate}, true
}

// tenantNames returns the display names of the partner's tenants, by
// lower-case id, and sets rep.Customers to their ids when every tenant's id
// could be read. The names are only for display, so a tenant list that
// cannot be read is a notice in rep (the records are then named after the
// usage rows' assignedAccountIdentifier) and a tenant that does not decode
// is logged; only a cancelled ctx is an error.
func (s *Source) tenantNames(ctx context.Context, rep *source.Report) (map[string]string, error) {
	names := map[string]string{}
	tenants, err := s.client.Tenants.ListAll(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		s.client.logger.Warn("Sophos tenant names cannot be read; customers are named after the usage report", "err", s.client.redact.String(err.Error()))
		rep.Problems = append(rep.Problems, source.Problem{Where: "sophos tenants",
			Err: fmt.Errorf("tenant names cannot be read, so customers are named after the usage report: %w", err)})
		return names, nil
	}
	ids := make([]string, 0, len(tenants))
	complete := true
	for _, t := range tenants {
		if t.Err != nil {
			s.client.logger.Warn("Sophos tenant cannot be read in full; its name is what could be read of it, or the usage report's",
				"tenant", t.ID, "err", t.Err.Error())
		}
		id := strings.TrimSpace(t.ID)
		if id == "" {
			// A tenant without a readable id could be any mapped
			// tenant: the list cannot say that one is gone.
			complete = false
			continue
		}
		ids = append(ids, id)
		if n := t.DisplayName(); n != "" {
			names[strings.ToLower(id)] = n
		}
	}
	if complete {
		rep.Customers, rep.CustomersListed = ids, true
	}
	return names, nil
}

// unassigned reports whether a usage row belongs to no customer tenant: it
// has no accountId, or its accountId is the partner's own account, or its
// accountType says it is the partner's.
func unassigned(it *UsageItem, partnerID string) bool {
	id := strings.TrimSpace(it.AccountID)
	return id == "" ||
		strings.EqualFold(id, partnerID) ||
		(it.PartnerAccountID != "" && strings.EqualFold(id, it.PartnerAccountID)) ||
		strings.EqualFold(it.AccountType, "partner")
}

func record(it *UsageItem, partnerID string, names map[string]string, p source.Period) (source.Record, error) {
	if it.Err != nil {
		return source.Record{}, fmt.Errorf("the row cannot be decoded: %w", it.Err)
	}
	code := strings.TrimSpace(it.ProductCode)
	if code == "" {
		return source.Record{}, errors.New("productCode is missing")
	}
	if it.BillableQuantity == nil {
		return source.Record{}, errors.New("billableQuantity is missing or null")
	}
	q := *it.BillableQuantity
	if q != math.Trunc(q) || math.IsInf(q, 0) || q > 1<<53 {
		return source.Record{}, fmt.Errorf("billableQuantity %v is not a whole number", q)
	}
	if q < 0 {
		return source.Record{}, fmt.Errorf("billableQuantity %v is negative", q)
	}
	rec := source.Record{
		Product:     code,
		ProductName: it.ProductDescription,
		Quantity:    int64(q),
		Period:      p.String(),
	}
	if unassigned(it, partnerID) {
		rec.Where = "sophos unassigned usage"
		if it.AccountNumberOrSerialNumber != "" {
			rec.Where += " (serial " + it.AccountNumberOrSerialNumber + ")"
		}
		return rec, nil
	}
	rec.CustomerID = strings.TrimSpace(it.AccountID)
	rec.CustomerName = names[strings.ToLower(rec.CustomerID)]
	if rec.CustomerName == "" {
		rec.CustomerName = it.AssignedAccountIdentifier
	}
	rec.Where = "sophos tenant " + rec.CustomerID
	return rec, nil
}

func itemWhere(p source.Period, i int, it *UsageItem) string {
	w := fmt.Sprintf("sophos usage %s item %d", p, i+1)
	var ids []string
	if it.AccountID != "" {
		ids = append(ids, "account "+it.AccountID)
	}
	if it.OrderLineItemNumber != "" {
		ids = append(ids, "order line "+it.OrderLineItemNumber)
	}
	if len(ids) > 0 {
		w += " (" + strings.Join(ids, ", ") + ")"
	}
	return w
}

// Check authenticates, reads whoami and asks for one page of tenants.
func (s *Source) Check(ctx context.Context) error {
	_, err := s.Describe(ctx)
	return err
}

// Describe does what Check does and says what it found, e.g. "partner
// 5e1b4c2a-... with 12 tenants".
func (s *Source) Describe(ctx context.Context) (string, error) {
	id, err := s.client.PartnerID(ctx)
	if err != nil {
		return "", err
	}
	_, resp, err := s.client.Tenants.List(ctx, &TenantListOptions{Page: 1, PageSize: 1, PageTotal: true})
	if err != nil {
		return "", err
	}
	n := resp.Pages.Items
	return fmt.Sprintf("partner %s with %d %s", id, n, map[bool]string{true: "tenant", false: "tenants"}[n == 1]), nil
}

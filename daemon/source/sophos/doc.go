// Package sophos is a usage source and API client for the Sophos Central
// Partner API.
//
// The client follows the vendor's wire protocol: an OAuth2 client-credentials
// token from Sophos ID (form POST with scope=token), cached until a minute
// before it expires and fetched anew once when the API answers 401; GET
// /whoami/v1 for the partner id (the credential must be a partner's; a tenant
// or organization credential is a clear error); the X-Partner-ID header on
// every /partner/v1 call; tenants by page (page, pageSize, pageTotal); and
// the monthly billing usage report by key (pageFromKey, nextKey). 429 and 5xx
// answers and network errors are retried with jittered exponential backoff,
// honouring Retry-After. At most 1 MiB of an error body is read, and the
// client secret and access token never appear in errors or logs.
//
// Source turns a month's report into usage records:
//
//   - billableQuantity is summed per (accountId, productCode); the customer
//     name comes from the tenant list;
//   - a row with no accountId, with the partner's own account id (from whoami
//     or the row's partnerAccountId), or with accountType "partner" is usage
//     that belongs to no customer tenant (firewall licences not yet assigned,
//     for example); it becomes a record with an empty CustomerID, which the
//     daemon reports and never bills;
//   - a row without productCode, or whose billableQuantity is missing,
//     null or not a whole, non-negative number, is skipped and reported as a
//     source.Problem (Unreadable for its tenant, so that the tenant is not
//     synced on partial usage);
//   - a row that repeats an earlier row's order line (orderLineItemNumber)
//     of the same account, product and billing dates is the same usage
//     listed twice: an Unreadable problem for its tenant, never added twice
//     (an order line split by billing dates is several rows, and adds up);
//   - each row is decoded on its own: one that does not decode (a field of
//     the wrong type, an item that is null or not an object) is an
//     Unreadable problem naming the month, its item number and the
//     accountId when that can be read; when it cannot, the problem has no
//     CustomerID and could be any customer's;
//   - the report is read whole or not at all: a listing whose rows differ
//     from the number its first page announced (pages.items), that ends
//     before the pages it announced (pages.total) or points past them,
//     repeats a page, or runs past 10,000 pages is an error; no page past
//     the announced number is asked for; a report of more than one page
//     is read again, up to three times, until two readings in a row hold
//     the same rows (rows added or removed while it was read shift the
//     pages: a row on two pages, or on none);
//   - the tenant list only supplies names: a tenant that does not decode is
//     logged and named from what could be read of it, and a list that
//     cannot be read (a server that does not follow page is stopped, at
//     1,000 pages at most) is a notice in the report's Problems, with
//     records named after the rows' assignedAccountIdentifier;
//   - a month Sophos has no report for yet (404 with the API's "No data
//     for requested year or month" message) gives an empty report with
//     one Problem wrapping ErrNoData, not an error; any other 404 of the
//     report (a proxy's page, a partner not on monthly billing) is an
//     error naming the answer.
//
// Usage:
//
//	src, err := sophos.New(sophos.Config{
//		ClientID:     os.Getenv("SOPHOS_CLIENT_ID"),
//		ClientSecret: os.Getenv("SOPHOS_CLIENT_SECRET"),
//		MaxRetries:   sophos.DefaultMaxRetries,
//	})
//	if err != nil { ... }
//	rep, err := src.Fetch(ctx, source.Period{Year: 2026, Month: time.October})
//	if err != nil { ... }
//	for _, r := range rep.Records {
//		fmt.Println(r.CustomerID, r.CustomerName, r.Product, r.Quantity)
//	}
//
// The lower-level client mirrors the API (go-github style):
//
//	c, err := sophos.NewClient(sophos.WithCredentials(id, secret))
//	tenants, err := c.Tenants.ListAll(ctx)
//	items, err := c.Billing.ListAllUsage(ctx, 2026, time.October, nil)
//
// Alerts are read per tenant, on the tenant's apiHost with X-Tenant-ID
// (AlertsService); ListAll returns a tenant's complete open set or an
// error, never part of it, because an alert missing from a listing is how
// Central says it was resolved:
//
//	alerts, err := c.Alerts.ListAll(ctx, tenant.ID, tenant.APIHost, &sophos.AlertListOptions{Severity: []string{"high", "medium"}})
//	if sophos.IsAccessDenied(err) { ... } // the customer has not granted access
//
// Package sophostest is a wire-compatible simulator to point AuthURL and
// APIURL at.
package sophos

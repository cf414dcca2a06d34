// Package autotask is a client for the Autotask PSA REST API (version 1.0)
// and the psa.Backend adapter that psa-sync uses to talk to it.
//
// The client follows go-github: a Client with one service per API area
// (Companies, Contracts, Services, ContractServices, ContractServiceUnits,
// ContractServiceAdjustments, BillingCodes, EntityInformation), methods
// taking a context first and returning the value, a *Response and an error.
//
//	client, err := autotask.NewClient(
//		autotask.WithCredentials("api@msp.example", secret, integrationCode),
//	)
//	if err != nil {
//		return err
//	}
//	q := autotask.NewQuery(
//		autotask.Eq("companyID", 174),
//		autotask.Or(autotask.Eq("status", 1), autotask.In("contractType", 6, 7)),
//	)
//	contracts, _, err := client.Contracts.List(ctx, q)
//
// # Wire behaviour
//
// The client discovers the tenant's zone through zoneInformation on first use
// (WithBaseURL skips that) and sends the ApiIntegrationCode, UserName and
// Secret headers, plus ImpersonationResourceId on writes (never on GETs or
// query POSTs, which it would limit to the resource's visibility) when
// configured.
// Queries are POSTed to {Entity}/query; further pages are fetched by POSTing
// the same body to pageDetails.nextPageUrl, and only when that URL has the
// zone's origin, so credentials never leave it. An unknown id (Autotask
// answers {"item": null}) gives an error matching psa.ErrNotFound; a 2xx
// without the envelope (no item, or neither items nor pageDetails: an
// errors array, {}) is an error, never an empty page or an unknown id. Updates are
// PATCHes to the collection URL with the id in the body.
//
// # Errors and limits
//
// CheckResponse maps Autotask's error shapes: a 500 with an "errors" array is
// a validation error (errors.Is(err, psa.ErrValidation), messages in a
// *psa.ValidationError), and one whose messages say the API user lacks the
// permission ("does not have the adequate permissions") matches
// psa.ErrForbidden too; 401 and 403 match psa.ErrUnauthorized, and so does a zone
// lookup refused with a message (Autotask's answer to an unknown user name);
// thread- and hourly-threshold responses, whatever their status, are
// *psa.RateLimitError.
//
// At most three requests (Autotask's thread threshold) are in flight per
// entity endpoint; a parent-scoped URL (Contracts/{id}/Services) counts
// against both the parent's and the child's, for its slots and for the
// throttle after a refusal, since Autotask does not say which one. Reads, queries and PATCHes are retried on throttling,
// server timeouts and network errors with exponential backoff, full jitter
// and Retry-After, up to five minutes: a longer Retry-After, on a 429 or a
// 5xx, is returned as an error instead of waited out. Creates are not: a create whose outcome is unknown (the
// connection broke after sending, a 5xx without a reason, or a 2xx without
// an itemId) returns an error matching psa.ErrOutcomeUnknown, because a ContractServiceAdjustment is a
// delta that cannot be read back, and sending it twice would bill twice.
// Creates rejected by the thread threshold, or whose connection never opened,
// were not processed and are retried. A rejection for the thread threshold
// uses up none of the retries of WithMaxRetries: the request is sent again
// until it has waited MaxThreadWait for a free thread, since another
// process of the same integration code may hold the threads for longer
// than a few retries last.
//
// # Backend
//
// Backend adapts a Client to psa.Backend. Picklist values (the service period
// type, the contract type "Recurring Service" and status "Active", the billing
// code use type) are looked up by label in entityInformation/fields and
// cached, never hard-coded, because they differ between tenants. ReadLines
// reads the units of many contracts with one ContractServiceUnits query per
// 500 contracts; SetQuantity posts one ContractServiceAdjustment with the
// difference and, when its outcome is unknown, re-reads the line instead of
// posting again. The adjustment names the line read (contractServiceID), and
// a service on a contract more than once (a repeat service) is reported as a
// *ContractErrors ambiguity rather than read as one line; so is a contract
// with a unit row that cannot be read (units null, a field of the wrong
// type), whose other rows are not used either. A line whose unit
// row at the read date has an approveAndPostDate is psa.ContractLine.Posted
// (its period is invoiced), and so is one with a later row posted out of
// order (an adjustment carries into every later period); SetQuantity
// refuses to adjust it.
package autotask

// Package kaseyabms is a client for the Kaseya BMS REST API, version 2, and
// a psa.Backend built on it.
//
// The client follows go-github: a Client with one service per API area
// (Services, Accounts, Contracts), context-first methods returning the
// decoded value, a *Response (with the envelope's totalRecords) and an
// error. It authenticates with POST /v2/security/authenticate (form fields
// GrantType=password, UserName, Password, Tenant), renews the bearer token
// before accessTokenExpireOn through /v2/security/refreshtoken (or signs in
// again), and re-authenticates once after a 401 (and after a 403, unless
// the token is known good: a pass refused some accounts signs in once). It
// keeps to BMS's limit of 1,500 calls per hour per endpoint with its own
// rolling-hour limiter, retries reads with exponential backoff and full
// jitter (honouring Retry-After up to five minutes; a longer one is
// returned as an error), and never re-sends a POST that may have been
// applied: such a failure matches psa.ErrOutcomeUnknown.
//
// # Usage
//
//	c, err := kaseyabms.NewClient(
//		kaseyabms.WithHostname("bmsemea.kaseya.com"), // as the BMS console shows it
//		kaseyabms.WithCredentials("api.user@msp.example", password, "Acme MSP"),
//	)
//	if err != nil { ... }
//	services, _, err := c.Services.SearchAll(ctx, &kaseyabms.ServicesFilter{Name: &name})
//
//	be := kaseyabms.NewBackend(c) // a psa.Backend
//	line, err := be.SetQuantity(ctx, psa.SetQuantityRequest{ContractID: "2001", ServiceID: "3001", Quantity: 42, EffectiveDate: periodStart})
//
// The hostname is the console's host without protocol or path; the API host
// is "api." followed by it (bms.kaseya.com, bmsemea.kaseya.com,
// bmsapac.kaseya.com, vorexlogin.com). WithBaseURL overrides it for
// simulators and unusual installs.
//
// # The honest limitation: contract line units
//
// BMS v2 documents no read of the units on a contract's service lines and
// no way to change them in place: the only operations carrying Units are
// POST /v2/finance/contracts/recurringservices and POST
// .../recurringservices/{contractId}/services; relatedservices/search has no
// Units, and relatedservices/bulkupdate changes price, name and effective
// date only. So Backend.ReadLines returns ErrUnitsNotReadable (matching
// psa.ErrNotSupported) without a request, and Backend.SetQuantity posts one
// new recurring-service line with Units and EffectiveDate. The caller keeps
// the record of what it last set (psa-syncd's ledger). What BMS does when a
// service already on the contract is posted again (a second line, or a
// prorated change) is not documented; the simulator keeps every line and
// counts the latest effective one.
//
// # Where the vendor's document and observed behaviour disagree
//
// The conformance test validates every request the client sends and every
// 200 answer of the simulator (psa/psatest) against the vendor's OpenAPI
// document (the part the client uses, in testdata/). These are the places
// where the document and what is observed (see the project's wire
// reference, §2) differ, and what the code follows:
//
//  1. Key casing. The document declares PascalCase keys with
//     additionalProperties:false; real traffic is camelCase (result,
//     accessToken, totalRecords, accountName). The client sends PascalCase,
//     as documented (ASP.NET binds keys case-insensitively), and decodes
//     either casing (encoding/json matches names case-insensitively). The
//     simulator answers in camelCase, as observed. The conformance test
//     maps each answer's keys to the document's casing, matching them
//     case-insensitively against the schema, before validating it.
//  2. The security forms. The document lists only multipart/form-data for
//     authenticate and refreshtoken; every known client posts
//     application/x-www-form-urlencoded, and so does this one (observed).
//     The simulator accepts both, with keys in any casing. The conformance
//     test validates the urlencoded fields against the document's
//     multipart schema.
//  3. "error": null. Successful answers carry "error": null on the wire;
//     the document's ErrorInfo is not nullable. The simulator sends null
//     (observed); the conformance test drops it before validating.
//  4. HTTP error statuses. The document declares only 200 answers and
//     models every failure as success:false inside them; a bad token gets
//     401 in practice. The client handles both forms (success:false is
//     mapped by code and message to psa.ErrUnauthorized, psa.ErrNotFound,
//     a rate limit, or else a psa.ValidationError). The simulator answers
//     validation failures and unknown ids with 200 success:false, and bad
//     tokens (401) and throttling (429) with those statuses and a
//     success:false envelope; those two are checked for the envelope only.
//  5. Throttling. BMS documents the limit (1,500 calls per hour per
//     endpoint) but not how it answers beyond it, and the document has no
//     rate-limit headers. 429 with Retry-After is assumed; the client's
//     own limiter keeps below the limit in any case. A refusal holds the
//     endpoint for its Retry-After, an hour at most (the limit's window).
//  6. GET /v2/crm/accounts/summary/{id} is declared to answer the bare
//     AccountSummaryOutputDto, unlike every other single-object endpoint,
//     which wraps it in the envelope. The simulator follows the document;
//     the client accepts both.
//  7. The document puts every operation under its global bearerAuth,
//     authenticate and refreshtoken included; they are how a token is
//     obtained, and the client sends none there.
//  8. Paging. The document does not say whether PageNumber counts from 0
//     or 1 (community scripts use both; the search body example uses 1).
//     The client starts at 1 and stops when it has totalRecords records or
//     gets an empty page (or, for listings without totalRecords, a short
//     page). When that ends short of totalRecords, or the listing has no
//     totalRecords (the account lookup), it asks for page 0 once and keeps
//     what it learns per endpoint; fewer records than totalRecords in the end
//     is an *IncompleteListError, never a silent partial list. The
//     simulator counts from 1 and reads 0 as 1 unless SetPaging says
//     otherwise.
//  9. Units are int32 on the way in and a double on the way out
//     (RecurringServicePostInputDto vs RecurringServicePostOutputDto), and
//     adding service lines takes an array and answers one line, as
//     declared. The client follows the document.
//  10. Dates are declared date-time; ASP.NET may write them without a zone.
//     The client reads both (zone-less values as UTC); the simulator writes
//     RFC 3339 in UTC. An access token whose accessTokenExpireOn is already
//     past when it arrives (a zone-less time in a zone behind UTC) is used
//     until BMS refuses it, rather than renewed for every request.
//  11. The document is not valid OpenAPI 3.0 as published (PUT
//     /v2/admin/companysettings declares no response;
//     /v2/admin/finance/chartofaccounts/lookup/{parentAccountCodeId}
//     declares query parameters as path parameters). The conformance test
//     validates against the paths the client uses, which are valid.
//
// Gaps in v2 that shape the Backend: there is no GET of one contract
// (GetContract combines the contract lookup by id, the contract summary
// filtered by name and the account lookup by name), the contract summary
// filters by names rather than ids, there is no unit-of-measure lookup (a
// unit of measure is resolved from an existing service that uses it), BMS
// services have no billing period or invoice description, and BMS reports
// no request budget (Backend.Budget returns psa.ErrNotSupported).
package kaseyabms

// Package connectwise is a client for the ConnectWise PSA (Manage) REST API
// 3.0 and the psa.Backend adapter that psa-sync uses to talk to it.
//
// The client follows go-github: a Client with one service per API area
// (Companies, Catalog, Agreements, AgreementAdditions), methods taking a
// context first and returning the value, a *Response and an error.
//
//	client, err := connectwise.NewClient(
//		connectwise.WithSite("api-na.myconnectwise.net"),
//		connectwise.WithCompanyID("msp"),
//		connectwise.WithKeys(publicKey, privateKey),
//		connectwise.WithClientID(clientID),
//	)
//	if err != nil {
//		return err
//	}
//	agreements, _, err := client.Agreements.List(ctx, &connectwise.ListOptions{
//		Conditions: connectwise.And(
//			connectwise.Eq("company/id", 174),
//			connectwise.Eq("agreementStatus", connectwise.AgreementActive),
//		),
//		Fields: []string{"id", "name", "agreementStatus"},
//	})
//
// # Wire behaviour
//
// The API root is https://{site}/{codebase}apis/3.0/. The codebase is
// discovered on first use through the unauthenticated
// GET /login/companyinfo/{company} (its "Codebase"), and discovered again
// once when a request gets 404, because hosted codebases change: requests
// in flight at the change share one discovery, and each is sent once more
// under the new codebase (a POST too, as a codebase that is not the
// company's refuses it before processing). WithCodebase and WithBaseURL pin
// it instead. Every request carries Basic
// authentication "company+publicKey:privateKey", the clientId header and
// Accept: application/vnd.connectwise.com+json; version=2025.16 (the vendor
// type first, or the version is ignored; WithAPIVersion changes it).
//
// Lists are bare JSON arrays. ListOptions builds conditions (see Condition:
// strings quoted and escaped, dates in [...], nested paths such as
// company/id), fields, orderBy and pageSize (1,000 by default, the maximum),
// and the client follows the Link header's rel="next" with the original
// query, navigable or forward-only (ListOptions.ForwardOnly); a full
// navigable page without a Link header (a proxy that dropped it) is
// followed by the next page by number, so a list is never cut short at
// its first page. Writes are
// POST (create), PATCH in ConnectWise's dialect
// [{"op":"replace","path":"quantity","value":42}] and DELETE.
//
// # Errors and limits
//
// CheckResponse maps {"code","message","errors":[...]} bodies: 400 matches
// psa.ErrValidation with the messages in a *psa.ValidationError, 401 and 403
// psa.ErrUnauthorized, 404 psa.ErrNotFound, 409 psa.ErrConflict and 429 is a
// *psa.RateLimitError with Retry-After. At most WithMaxConcurrency requests
// are in flight. GETs and PATCHes are retried on 429, 5xx and network errors
// with exponential backoff, full jitter and Retry-After, up to five minutes:
// a longer Retry-After, on a 429 or a 5xx, is returned as an error instead
// of waited out. A GET answered 429 is sent again until it has waited
// MaxThrottledReadWait, using up none of WithMaxRetries: ConnectWise
// documents neither its limit nor how long it throttles. After a 429 the
// client's requests wait together (throttle): one is sent at a time, after
// the Retry-After or the backoff, and the others wait for its answer, for at
// most MaxThrottledReadWait. A POST is retried
// only when ConnectWise surely did not process it (429, or no connection);
// otherwise an unknown outcome gives an error matching psa.ErrOutcomeUnknown
// and the caller reads to find out. Error bodies are read up to 1 MiB, and
// no error or log line carries credentials.
//
// # Backend
//
// Backend adapts a Client to psa.Backend; its doc comment lists how the
// neutral model maps to catalog items, companies, agreements and additions.
// ReadLines reads the active additions of each agreement (one request per
// 1,000 additions, as many agreements at a time as the client keeps in
// flight, eight by default) and nothing else, and keeps those not
// cancelled on or before asOf; SetQuantity, and its re-read after a lost
// create, keep the additions by the same rule at the effective date, so
// an addition that ends before it is never written; per-agreement problems
// (missing, ambiguous, fractional, an answer that cannot be decoded or a
// 4xx refusal of that agreement's request) come back in a *ContractErrors
// alongside the other agreements' lines, while a 401, 429, 5xx or lost
// connection fails the whole read. CheckWrites reads the status of the
// agreements a pass will write to, 100 a request, before the first write,
// and reports the cancelled, expired, inactive and missing ones, and those
// ConnectWise answered with a record that cannot be decoded (a field of
// the wrong type), each alone; an answer that is not a list of agreements,
// a 401, 429, 5xx or lost connection fails the whole check.
// SetQuantity PATCHes the quantity, or creates the addition when there is
// none, and refuses those agreements.
//
// SetQuantity reads an agreement's status once per pass, not once per line:
// it uses what CheckWrites read, and a status is trusted for two minutes;
// a write to an agreement whose status is older reads it again together
// with up to 99 agreements that come after it in CheckWrites' order. An
// agreement cancelled in those two minutes may still receive the pass's
// remaining writes to it: the references this package was built from do
// not say that ConnectWise refuses a PATCH on an addition of a cancelled
// agreement, so the window is accepted rather than closed. The write is an
// absolute quantity on an addition that was active when read; a PATCH
// answered with a cancelled addition is still refused; the next pass's
// CheckWrites refuses the agreement and nothing more is written to it; and
// a write answered with a conflict, a validation error or not found forgets
// the status, so the next write reads it again.
package connectwise

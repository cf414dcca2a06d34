// Package sophostest is a wire-compatible simulator of the Sophos Central
// Partner API, named after net/http/httptest. It is an ordinary package, so
// client tests, daemon tests and `psa-syncd simulate` share it.
//
// It serves, on one loopback listener:
//
//   - POST /api/v2/oauth2/token: the client-credentials grant as a form post
//     (and the refresh-token grant as JSON, as in the vendor's collection);
//     wrong credentials get 401 with Sophos ID's {"errorCode", "message",
//     "trackingId"} body;
//   - GET /whoami/v1: {"id", "idType", "apiHosts": {"global"}}, pointing back
//     at the simulator;
//   - GET /partner/v1/tenants (page, pageSize up to 100, pageTotal) and
//     GET /partner/v1/tenants/{id};
//   - GET /partner/v1/billing/usage/{year}/{month} (pageSize up to 1000,
//     pageFromKey/nextKey with opaque keys, pageTotal, accountId,
//     contactEmail, fields), answering 404 for a month without data;
//   - GET /common/v1/alerts (the tenant-level Common API: X-Tenant-ID with
//     the partner's token; groupKey, from, to, sort, product, category,
//     severity, ids, fields, pageSize up to 1000, pageFromKey/nextKey,
//     pageTotal; other parameters are refused) and
//     GET /common/v1/alerts/{id}, 404 once the alert is resolved.
//     AddAlert raises an alert, ResolveAlert clears it (it is then simply no
//     longer listed, as in Central), DenyAlerts makes a tenant answer 403
//     "Access is denied", as Central does for some tenants.
//
// API calls need a live bearer token (401 otherwise, with the Central error
// envelope); /partner/v1 calls also need X-Partner-ID (400 when missing or not
// a UUID, 403 when it is not the partner's, or when the credential is not a
// partner's). Error bodies have the envelope of the vendor's examples:
// error, message, correlationId, code, createdAt, requestId, docUrl. Where the
// reference notes could not verify a detail (the 400 for a missing header,
// the Sophos ID error codes other than oauth.invalid_client_secret, page size
// limits), the simulator's choice is marked as inferred in those notes.
//
// Faults (status with Retry-After, latency, dropped connections, a number of
// times) are injected with WithFault or AddFault; Requests returns the log.
// GET /_sim/sophos/state returns the state as a fixture; it is not part of
// the Sophos API and is never faulted.
//
// In a test:
//
//	sim := sophostest.Start(t, sophostest.WithFixtureFile("testdata/fixture.json"))
//	sim.AddFault(sophostest.Fault{Path: "/partner/v1/billing/usage/*", Status: 429, RetryAfter: time.Second, Times: 1})
//	src, err := sophos.New(sophos.Config{
//		ClientID: sim.ClientID(), ClientSecret: sim.ClientSecret(),
//		AuthURL: sim.AuthURL(), APIURL: sim.APIURL(),
//		MaxRetries: sophos.DefaultMaxRetries,
//	})
//
// By hand, on a chosen address:
//
//	sim, err := sophostest.NewServerOn("127.0.0.1:9443", sophostest.WithFixtureFile("sophos.json"))
//	if err != nil { ... }
//	defer sim.Close()
//	fmt.Println("Sophos simulator at", sim.URL())
//
// testdata/fixture.json is an example fixture: three tenants and a month of
// usage with two order lines for one (tenant, product) and a firewall
// licence that belongs to no customer.
package sophostest

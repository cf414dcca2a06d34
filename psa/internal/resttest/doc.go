// Package resttest holds the test helpers that the Autotask, ConnectWise and
// Kaseya BMS client tests share, in the shape go-github's tests use: a
// server whose API is mounted under a non-empty base path, checks of a
// request's method, headers and JSON body, canned answers that count their
// requests, a dropped connection, an answer compressed unasked (which the
// export client's tests use too), and a recorder of the waits a client
// would have slept.
//
// It makes no vendor decision: canned answers, auth and error envelopes stay
// in each client's tests. A client's test file names the checks as its own
// (testMethod, testHeader, testJSONBody), so that its tests read as before:
//
//	var testJSONBody = resttest.JSONBody
//
//	func setup(t *testing.T) (*Client, *http.ServeMux) {
//		mux, serverURL := resttest.Mount(t, "/v2025_1/apis/3.0")
//		c, err := NewClient(WithSite(serverURL), ...)
//		...
//	}
package resttest

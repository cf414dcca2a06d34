package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// TestDaemon_checkPassedSendsRefusedSourceCallsAgain: Sophos refused a
// token fetched for a call (the API credential's role taken away), and
// the daemon's Sophos client holds the calls to that host back for a
// minute. The operator gives the role back and runs psa-syncd check
// through the daemon, which builds a client of its own and passes; a
// "sync now" or ticket pass in the rest of that minute still failed with
// "not sent ... until". A passed check of the running source settings now
// drops the holds; a check that fails keeps them.
func TestDaemon_checkPassedSendsRefusedSourceCallsAgain(t *testing.T) {
	t.Parallel()
	// What psa-syncd check does for the source (cmd/psa-syncd checks).
	check := func(ctx context.Context, cfg *Config, _ func() ([]byte, error), _ func(*Config) (psa.Backend, error), _ io.Writer) []CheckItem {
		src, err := cfg.NewSource(nil, nil)
		if err == nil {
			if d, ok := src.(source.Describer); ok {
				_, err = d.Describe(ctx)
			} else {
				err = src.Check(ctx)
			}
		}
		if err != nil {
			return []CheckItem{{Result: CheckFail, Item: "source sophos", Detail: err.Error()}}
		}
		return []CheckItem{{Result: CheckOK, Item: "source sophos"}}
	}
	d, _, sop := ttSetupOptions(t, nil, true, "  api_token: "+ttToken+"\n", Options{Check: check})
	checked := func() bool {
		t.Helper()
		req := httptest.NewRequest(http.MethodPost, "/api/v1/check", nil)
		req.Header.Set("Authorization", "Bearer "+ttToken)
		rec := httptest.NewRecorder()
		d.Handler().ServeHTTP(rec, req)
		var r CheckReport
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &r) != nil {
			t.Fatalf("POST /api/v1/check = %d %s", rec.Code, rec.Body.String())
		}
		return r.OK
	}
	src := d.clients.Load().source
	ctx := t.Context()
	if err := src.Check(ctx); err != nil {
		t.Fatal(err)
	}
	sop.AddFault(sophostest.Fault{Path: "/partner/v1/tenants", Status: http.StatusUnauthorized})
	if err := src.Check(ctx); !errors.Is(err, psa.ErrUnauthorized) || strings.Contains(err.Error(), "not sent") {
		t.Fatalf("call refused with a new token: %v, want sent and refused", err)
	}
	if err := src.Check(ctx); err == nil || !strings.Contains(err.Error(), "not sent") {
		t.Fatalf("call right after the refusal: %v, want held back (not sent)", err)
	}
	if checked() {
		t.Fatal("check passed while Sophos refuses the credential")
	}
	if err := src.Check(ctx); err == nil || !strings.Contains(err.Error(), "not sent") {
		t.Errorf("call after a failed check: %v, want still held back", err)
	}

	// The role is given back.
	sop.ClearFaults()
	if !checked() {
		t.Fatal("check failed once Sophos takes the credential again")
	}
	if err := src.Check(ctx); err != nil {
		t.Errorf("call after the check passed: %v, want it sent (and answered)", err)
	}
}

package backends_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/backends"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// notAPIConfigs builds a backend of each system for an address.
var notAPIConfigs = map[psa.System]func(base string) backends.Config{
	psa.SystemAutotask: func(base string) backends.Config {
		return backends.Config{System: psa.SystemAutotask, Autotask: &backends.AutotaskConfig{
			Username: "api@msp.example", Secret: "notapi-secret", IntegrationCode: "NOTAPICODE", BaseURL: base + "/ATServicesRest/"}}
	},
	psa.SystemConnectWise: func(base string) backends.Config {
		return backends.Config{System: psa.SystemConnectWise, ConnectWise: &backends.ConnectWiseConfig{
			BaseURL: base + "/v4_6_release/apis/3.0/", CompanyID: "acme", PublicKey: "pub", PrivateKey: "notapi-secret", ClientID: "client"}}
	},
	psa.SystemKaseyaBMS: func(base string) backends.Config {
		return backends.Config{System: psa.SystemKaseyaBMS, KaseyaBMS: &backends.KaseyaBMSConfig{
			BaseURL: base + "/", Username: "api@msp.example", Password: "notapi-secret", Tenant: "t"}}
	},
}

// TestBackends_notAPIAnswer checks that every backend takes a 2xx answer
// that is not its PSA's API (a proxy's sign-in page, also after a
// redirect to it, or another product's JSON) for what it is,
// psa.ErrNotAPI, at each kind of call (a basic read, a read by id, a
// search, a bulk read, a count, the line read, a create): never for a
// record that does not exist, an empty list, a zero count or a stored
// create. The error names the address's host and the base URL setting,
// and quotes neither the page (but its title) nor a secret.
func TestBackends_notAPIAnswer(t *testing.T) {
	t.Parallel()
	signIn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(psatest.SignInPage))
	}))
	t.Cleanup(signIn.Close)
	signInHost := strings.TrimPrefix(signIn.URL, "http://")
	for _, answer := range []struct {
		name     string
		handler  http.HandlerFunc
		want     string
		redirect bool
	}{
		{name: "sign-in page", handler: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write([]byte(psatest.SignInPage))
		}, want: `an HTML page titled "Sign in to your account"`},
		{name: "redirect to a sign-in page", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, signIn.URL+"/adfs/ls/?wa=wsignin1.0", http.StatusFound)
		}, want: "from " + signInHost + ", after a redirect", redirect: true},
		{name: "another product's json", handler: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"status":"ok","version":"2.1"}`))
		}, want: "JSON "},
	} {
		for sys, cfg := range notAPIConfigs {
			t.Run(answer.name+"/"+string(sys), func(t *testing.T) {
				t.Parallel()
				srv := httptest.NewServer(answer.handler)
				t.Cleanup(srv.Close)
				be, err := backends.New(cfg(srv.URL))
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
				defer cancel()
				check := func(call string, err error) {
					t.Helper()
					if !errors.Is(err, psa.ErrNotAPI) {
						t.Errorf("%s: error %v, want psa.ErrNotAPI", call, err)
						return
					}
					if errors.Is(err, psa.ErrNotFound) {
						t.Errorf("%s: error %v matches psa.ErrNotFound", call, err)
					}
					msg := err.Error()
					for _, bad := range []string{"notapi-secret", "<form", "UserName", "adfs"} {
						if strings.Contains(msg, bad) {
							t.Errorf("%s: error %q quotes %q", call, msg, bad)
						}
					}
					if !strings.Contains(msg, answer.want) || !strings.Contains(msg, "base_url") {
						t.Errorf("%s: error %q, want it to say %q and name base_url", call, msg, answer.want)
					}
				}
				check("Ping", be.Ping(ctx))
				_, err = be.GetContract(ctx, "34")
				check("GetContract", err)
				_, err = be.GetService(ctx, "12")
				check("GetService", err)
				_, err = be.FindServices(ctx, "Backup")
				check("FindServices", err)
				if br, ok := be.(psa.BulkReader); ok {
					_, err = br.GetContracts(ctx, []string{"34", "35"})
					check("GetContracts", err)
				}
				if cl, ok := be.(psa.ContractLister); ok {
					_, _, err = cl.ListContracts(ctx, 5)
					check("ListContracts", err)
				}
				if sys != psa.SystemKaseyaBMS { // BMS reads no lines
					_, err = be.ReadLines(ctx, []string{"34", "35"}, time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC))
					check("ReadLines", err)
				}
				_, err = be.CreateService(ctx, &psa.Service{Name: "Backup", BillingPeriod: psa.BillingPeriodMonthly, Autotask: &psa.AutotaskServiceFields{BillingCodeID: "29682801"}})
				check("CreateService", err)
			})
		}
	}
}

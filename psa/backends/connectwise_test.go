package backends_test

import (
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/backends"
	"github.com/psa-sync/terraform-provider-psa/psa/connectwise"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

func TestNew_connectwise(t *testing.T) {
	t.Parallel()
	s := psatest.Start(t, psatest.WithSystem(psa.SystemConnectWise))
	company, pub, priv, clientID := s.ConnectWise().Credentials()
	for _, cfg := range []*backends.ConnectWiseConfig{
		{Site: s.ConnectWiseSite(), CompanyID: company, PublicKey: pub, PrivateKey: priv, ClientID: clientID},
		{BaseURL: s.ConnectWiseBaseURL(), CompanyID: company, PublicKey: pub, PrivateKey: priv, ClientID: clientID, APIVersion: "2024.1"},
		{Site: s.ConnectWiseSite(), Codebase: "v4_6_release", CompanyID: company, PublicKey: pub, PrivateKey: priv, ClientID: clientID},
	} {
		s.ResetRequests()
		b, err := backends.New(backends.Config{System: psa.SystemConnectWise, ConnectWise: cfg, MaxRetries: backends.DefaultMaxRetries, UserAgent: "psa-sync-test"})
		if err != nil {
			t.Fatalf("New(%v): %v", cfg, err)
		}
		if n := len(s.Requests()); n != 0 {
			t.Errorf("New made %d requests, want none (discovery is lazy)", n)
		}
		if err := b.Ping(t.Context()); err != nil {
			t.Fatalf("Ping(%v): %v", cfg, err)
		}
		if got, want := b.Instance(), "company:"+cfg.CompanyID+"@"+strings.TrimPrefix(s.URL(), "http://"); got != want || b.System() != psa.SystemConnectWise {
			t.Errorf("Instance = %q, want %q; System = %q", got, want, b.System())
		}
		for _, r := range s.Requests() {
			if ua := r.Header.Get("User-Agent"); ua != "psa-sync-test" {
				t.Errorf("%s %s: User-Agent %q", r.Method, r.Path, ua)
			}
		}
	}
	if s := (&backends.ConnectWiseConfig{PrivateKey: "top-secret"}).String(); strings.Contains(s, "top-secret") {
		t.Errorf("String() leaks the private key: %s", s)
	}
}

// An on-premises ConnectWise older than connectwise.DefaultAPIVersion
// refuses the default in Accept: the refusal names the server's version,
// and api_version set to it works.
func TestNew_connectwiseOlderServer(t *testing.T) {
	t.Parallel()
	s := psatest.Start(t, psatest.WithSystem(psa.SystemConnectWise), psatest.WithConnectWiseAPIVersion("2023.2"))
	company, pub, priv, clientID := s.ConnectWise().Credentials()
	open := func(version string) psa.Backend {
		t.Helper()
		b, err := backends.New(backends.Config{System: psa.SystemConnectWise, MaxRetries: backends.DefaultMaxRetries, ConnectWise: &backends.ConnectWiseConfig{
			Site: s.ConnectWiseSite(), CompanyID: company, PublicKey: pub, PrivateKey: priv, ClientID: clientID, APIVersion: version,
		}})
		if err != nil {
			t.Fatalf("New(api version %q): %v", version, err)
		}
		return b
	}
	err := open("").Ping(t.Context())
	if err == nil || !strings.Contains(err.Error(), "does not support the API version '"+connectwise.DefaultAPIVersion+"'") ||
		!strings.Contains(err.Error(), "This server's API version is 2023.2 (api-current-version): set the ConnectWise api_version setting to it.") {
		t.Errorf("Ping with the default version = %v; want the refusal, naming the server's version and the setting", err)
	}
	if err := open("2023.2").Ping(t.Context()); err != nil {
		t.Errorf("Ping with api version 2023.2: %v", err)
	}
}

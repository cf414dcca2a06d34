package backends_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/backends"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

func TestNew_autotask(t *testing.T) {
	t.Parallel()
	s := psatest.Start(t)
	user, secret, code := s.Autotask().Credentials()
	b, err := backends.New(backends.Config{
		System: psa.SystemAutotask,
		Autotask: &backends.AutotaskConfig{
			Username: user, Secret: secret, IntegrationCode: code,
			ZoneLookupURL: s.AutotaskZoneLookupURL(),
		},
		MaxRetries: backends.DefaultMaxRetries,
		UserAgent:  "psa-sync-test",
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if n := len(s.Requests()); n != 0 {
		t.Errorf("New made %d requests, want none (discovery is lazy)", n)
	}
	if b.System() != psa.SystemAutotask {
		t.Errorf("System = %q", b.System())
	}
	if err := b.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	// The tenant (CI 1 in the simulator) at the discovered zone host.
	if got, want := b.Instance(), "ci:1@"+strings.TrimPrefix(s.URL(), "http://"); got != want {
		t.Errorf("Instance = %q, want %q", got, want)
	}
	for _, r := range s.Requests() {
		if ua := r.Header.Get("User-Agent"); ua != "psa-sync-test" {
			t.Errorf("%s %s: User-Agent %q", r.Method, r.Path, ua)
		}
	}
}

func TestNew_baseURL(t *testing.T) {
	t.Parallel()
	s := psatest.Start(t)
	user, secret, code := s.Autotask().Credentials()
	b, err := backends.New(backends.Config{
		System: psa.SystemAutotask,
		Autotask: &backends.AutotaskConfig{
			Username: user, Secret: secret, IntegrationCode: code,
			BaseURL:                 s.AutotaskBaseURL(),
			ImpersonationResourceID: "29682885",
		},
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	// With a base URL the instance is known at once.
	if got, want := b.Instance(), strings.TrimPrefix(s.URL(), "http://"); got != want {
		t.Errorf("Instance = %q, want %q", got, want)
	}
	if _, err := b.Budget(t.Context()); err != nil {
		t.Fatalf("Budget: %v", err)
	}
	for _, r := range s.Requests() {
		if strings.Contains(strings.ToLower(r.Path), "zoneinformation") {
			t.Errorf("zone lookup %s despite a base URL", r.Path)
		}
	}
}

func TestNew_customHTTPClient(t *testing.T) {
	t.Parallel()
	s := psatest.Start(t)
	user, secret, code := s.Autotask().Credentials()
	var n atomic.Int32
	hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		n.Add(1)
		return http.DefaultTransport.RoundTrip(r)
	})}
	b, err := backends.New(backends.Config{
		System:     psa.SystemAutotask,
		Autotask:   &backends.AutotaskConfig{Username: user, Secret: secret, IntegrationCode: code, BaseURL: s.AutotaskBaseURL()},
		HTTPClient: hc,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n.Load() == 0 {
		t.Error("the configured HTTP client was not used")
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestNew_errors(t *testing.T) {
	t.Parallel()
	const secret = "do-not-print-me"
	tests := []struct {
		name string
		cfg  backends.Config
		want string
		is   error
	}{
		{name: "unknown system", cfg: backends.Config{System: "halo"}, want: `unknown PSA system "halo"`, is: backends.ErrUnknownSystem},
		{name: "no connectwise block", cfg: backends.Config{System: psa.SystemConnectWise}, want: "connectwise configuration is missing"},
		{
			name: "connectwise missing site and keys",
			cfg:  backends.Config{System: psa.SystemConnectWise, ConnectWise: &backends.ConnectWiseConfig{CompanyID: "msp", PrivateKey: secret}},
			want: "missing required attribute site, public_key, client_id",
		},
		{
			name: "connectwise bad site",
			cfg:  backends.Config{System: psa.SystemConnectWise, ConnectWise: &backends.ConnectWiseConfig{Site: "na.myconnectwise.net/v4_6_release", CompanyID: "msp", PublicKey: "p", PrivateKey: secret, ClientID: "c"}},
			want: "must not have a path",
		},
		{name: "no kaseya_bms block", cfg: backends.Config{System: psa.SystemKaseyaBMS}, want: "kaseya_bms configuration is missing"},
		{
			name: "kaseya_bms missing password and hostname",
			cfg:  backends.Config{System: psa.SystemKaseyaBMS, KaseyaBMS: &backends.KaseyaBMSConfig{Username: "u", Tenant: secret}},
			want: "missing required attribute password, hostname",
		},
		{
			name: "kaseya_bms hostname with protocol",
			cfg:  backends.Config{System: psa.SystemKaseyaBMS, KaseyaBMS: &backends.KaseyaBMSConfig{Hostname: "https://bmsemea.kaseya.com", Username: "u", Password: secret, Tenant: "t"}},
			want: "must not include a protocol",
		},
		{name: "no autotask block", cfg: backends.Config{System: psa.SystemAutotask}, want: "autotask configuration is missing"},
		{
			name: "missing username and code",
			cfg:  backends.Config{System: psa.SystemAutotask, Autotask: &backends.AutotaskConfig{Secret: secret}},
			want: "missing required attribute username, integration_code",
		},
		{
			name: "missing secret",
			cfg:  backends.Config{System: psa.SystemAutotask, Autotask: &backends.AutotaskConfig{Username: "u", IntegrationCode: secret}},
			want: "missing required attribute secret",
		},
		{
			name: "bad impersonation",
			cfg:  backends.Config{System: psa.SystemAutotask, Autotask: &backends.AutotaskConfig{Username: "u", Secret: secret, IntegrationCode: "c", ImpersonationResourceID: "bob"}},
			want: `impersonation_resource_id "bob"`,
		},
		{
			name: "bad base URL",
			cfg:  backends.Config{System: psa.SystemAutotask, Autotask: &backends.AutotaskConfig{Username: "u", Secret: secret, IntegrationCode: "c", BaseURL: "webservices5.autotask.net"}},
			want: "base URL",
		},
		{
			name: "negative retries",
			cfg:  backends.Config{System: psa.SystemAutotask, Autotask: &backends.AutotaskConfig{Username: "u", Secret: secret, IntegrationCode: "c"}, MaxRetries: -1},
			want: "max retries",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := backends.New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New error = %v, want it to contain %q", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("New error = %v, want it to match %v", err, tt.is)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("New error leaks a secret: %v", err)
			}
		})
	}
}

func TestAutotaskConfig_String(t *testing.T) {
	t.Parallel()
	c := &backends.AutotaskConfig{Username: "u", Secret: "s3cr3t", IntegrationCode: "c0de"}
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c)} {
		if strings.Contains(s, "s3cr3t") || strings.Contains(s, "c0de") {
			t.Errorf("formatted config leaks secrets: %s", s)
		}
	}
}

func TestNew_kaseyaBMS(t *testing.T) {
	t.Parallel()
	srv := psatest.Start(t, psatest.WithSystem(psa.SystemKaseyaBMS))
	be, err := backends.New(backends.Config{
		System: psa.SystemKaseyaBMS,
		KaseyaBMS: &backends.KaseyaBMSConfig{
			Hostname: "bmsemea.kaseya.com", // the base URL wins
			BaseURL:  srv.KaseyaBMSBaseURL(),
			Username: psatest.DefaultKaseyaBMSUsername, Password: psatest.DefaultKaseyaBMSPassword, Tenant: psatest.DefaultKaseyaBMSTenant,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if be.System() != psa.SystemKaseyaBMS {
		t.Errorf("System = %q", be.System())
	}
	if err := be.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	be, err = backends.New(backends.Config{System: psa.SystemKaseyaBMS, KaseyaBMS: &backends.KaseyaBMSConfig{
		Hostname: "bmsemea.kaseya.com", Username: "u", Password: "p", Tenant: "t"}})
	if err != nil || be.Instance() != "tenant:t@api.bmsemea.kaseya.com" {
		t.Errorf("Instance = %q, %v; want tenant:t@api.bmsemea.kaseya.com", be.Instance(), err)
	}
	c := &backends.KaseyaBMSConfig{Username: "u", Password: "s3cr3t", Tenant: "t"}
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c)} {
		if strings.Contains(s, "s3cr3t") {
			t.Errorf("formatted config leaks the password: %s", s)
		}
	}
}

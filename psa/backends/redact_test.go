package backends_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/backends"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// TestBackends_echoedSecretsAreRedacted points each PSA client at a server
// that answers errors quoting the whole request, headers and body included
// (Autotask used to return its secret and integration code in check, plan
// and sync output this way). No error, and no message inside a
// *psa.ValidationError or *psa.RateLimitError, may contain a credential in
// any encoding; nor may the error value hold one, printed with %v, %+v or
// %#v or walked as a deep printer does (the answer it keeps must not keep
// the request's credential headers).
func TestBackends_echoedSecretsAreRedacted(t *testing.T) {
	t.Parallel()
	const (
		atSecret = "at-Secret/with+signs&more"
		atCode   = "AT-INTEGRATION-CODE-1234"
		cwPriv   = "cw-private-key-5678"
		cwClient = "cw-client-id-4321"
		bmsPass  = "bms pass/word+&=9"
	)
	type target struct {
		name    string
		sim     *psatest.Server
		cfg     backends.Config
		secrets func(*psatest.Server) []string
	}
	at := psatest.Start(t, psatest.WithAutotaskCredentials("api@msp.example", atSecret, atCode))
	cw := psatest.Start(t, psatest.WithSystem(psa.SystemConnectWise), psatest.WithConnectWiseCredentials("acme", "pubkey1234", cwPriv, cwClient))
	bms := psatest.Start(t, psatest.WithSystem(psa.SystemKaseyaBMS), psatest.WithKaseyaBMSCredentials("api@msp.example", bmsPass, "tenant1"))
	cwCred := "acme+pubkey1234:" + cwPriv
	targets := []target{
		{name: "autotask", sim: at, cfg: backends.Config{System: psa.SystemAutotask, Autotask: &backends.AutotaskConfig{
			Username: "api@msp.example", Secret: atSecret, IntegrationCode: atCode, BaseURL: at.AutotaskBaseURL()}},
			secrets: func(*psatest.Server) []string { return []string{atSecret, atCode, url.QueryEscape(atSecret)} }},
		{name: "connectwise", sim: cw, cfg: backends.Config{System: psa.SystemConnectWise, ConnectWise: &backends.ConnectWiseConfig{
			BaseURL: cw.ConnectWiseBaseURL(), CompanyID: "acme", PublicKey: "pubkey1234", PrivateKey: cwPriv, ClientID: cwClient}},
			secrets: func(*psatest.Server) []string {
				return []string{cwPriv, cwClient, base64.StdEncoding.EncodeToString([]byte(cwCred))}
			}},
		{name: "kaseya_bms/authentication", sim: bms, cfg: backends.Config{System: psa.SystemKaseyaBMS, KaseyaBMS: &backends.KaseyaBMSConfig{
			BaseURL: bms.KaseyaBMSBaseURL(), Username: "api@msp.example", Password: bmsPass, Tenant: "tenant1"}},
			secrets: func(*psatest.Server) []string { return []string{bmsPass, url.QueryEscape(bmsPass)} }},
	}
	for _, tc := range targets {
		for _, status := range []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusInternalServerError, http.StatusTooManyRequests} {
			tc.sim.ClearFaults()
			tc.sim.AddFault(psatest.Fault{Status: status, EchoRequest: true})
			be, err := backends.New(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			checkNoSecret(t, tc.name, status, be.Ping(t.Context()), tc.secrets(tc.sim))
			_, err = be.GetContract(t.Context(), "29684183")
			checkNoSecret(t, tc.name, status, err, tc.secrets(tc.sim))
		}
		tc.sim.ClearFaults()
	}

	// Kaseya BMS: the echoed request carries the bearer token.
	be, err := backends.New(targets[2].cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := be.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	var token string
	for _, r := range bms.Requests() {
		if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
			token = strings.TrimPrefix(h, "Bearer ")
		}
	}
	if token == "" {
		t.Fatal("no bearer token seen")
	}
	bms.AddFault(psatest.Fault{Status: http.StatusBadRequest, EchoRequest: true})
	_, err = be.GetContract(t.Context(), "1")
	checkNoSecret(t, "kaseya_bms/token", http.StatusBadRequest, err, []string{token, bmsPass})
}

func checkNoSecret(t *testing.T, name string, status int, err error, secrets []string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s %d: no error from an echoing server", name, status)
		return
	}
	texts := []string{err.Error()}
	var ve *psa.ValidationError
	if errors.As(err, &ve) {
		texts = append(texts, ve.Messages...)
	}
	var rl *psa.RateLimitError
	if errors.As(err, &rl) {
		texts = append(texts, rl.Message)
	}
	if !strings.Contains(strings.Join(texts, " "), "echo of the request") && !strings.Contains(err.Error(), "[REDACTED]") {
		t.Logf("%s %d: the error does not quote the echo (%v)", name, status, err)
	}
	for _, text := range texts {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("%s %d: error text contains the secret %q:\n%s", name, status, s, text)
			}
		}
	}
	for _, leak := range psatest.Leaks(err, secrets...) {
		t.Errorf("%s %d: the error value holds a secret: %s", name, status, leak)
	}
}

// TestBackends_gzipEchoRedacted: an error answer that quotes the request
// comes gzip-compressed, asked for by Go's transport or not: each client
// reads its message and keeps the credentials out of it.
func TestBackends_gzipEchoRedacted(t *testing.T) {
	t.Parallel()
	const (
		atSecret = "gz-at-Secret/with+signs&more"
		cwPriv   = "gz-cw-private-key-5678"
		bmsPass  = "gz bms pass/word+&=9"
	)
	at := psatest.Start(t, psatest.WithAutotaskCredentials("api@msp.example", atSecret, "GZ-INTEGRATION-CODE"))
	cw := psatest.Start(t, psatest.WithSystem(psa.SystemConnectWise), psatest.WithConnectWiseCredentials("acme", "pubkey1234", cwPriv, "gz-client-id"))
	bms := psatest.Start(t, psatest.WithSystem(psa.SystemKaseyaBMS), psatest.WithKaseyaBMSCredentials("api@msp.example", bmsPass, "tenant1"))
	for _, tc := range []struct {
		name    string
		sim     *psatest.Server
		cfg     backends.Config
		secrets []string
	}{
		{"autotask", at, backends.Config{System: psa.SystemAutotask, Autotask: &backends.AutotaskConfig{
			Username: "api@msp.example", Secret: atSecret, IntegrationCode: "GZ-INTEGRATION-CODE", BaseURL: at.AutotaskBaseURL()}},
			[]string{atSecret, "GZ-INTEGRATION-CODE"}},
		{"connectwise", cw, backends.Config{System: psa.SystemConnectWise, ConnectWise: &backends.ConnectWiseConfig{
			BaseURL: cw.ConnectWiseBaseURL(), CompanyID: "acme", PublicKey: "pubkey1234", PrivateKey: cwPriv, ClientID: "gz-client-id"}},
			[]string{cwPriv, "gz-client-id", base64.StdEncoding.EncodeToString([]byte("acme+pubkey1234:" + cwPriv))}},
		{"kaseya_bms", bms, backends.Config{System: psa.SystemKaseyaBMS, KaseyaBMS: &backends.KaseyaBMSConfig{
			BaseURL: bms.KaseyaBMSBaseURL(), Username: "api@msp.example", Password: bmsPass, Tenant: "tenant1"}},
			[]string{bmsPass}},
	} {
		for _, hc := range []*http.Client{nil, {Transport: psatest.AcceptGzip{}}} {
			name := fmt.Sprintf("%s (client asks gzip itself: %t)", tc.name, hc != nil)
			tc.sim.ClearFaults()
			tc.sim.AddFault(psatest.Fault{Status: http.StatusBadRequest, EchoRequest: true, Gzip: true})
			cfg := tc.cfg
			cfg.HTTPClient = hc
			be, err := backends.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			err = be.Ping(t.Context())
			if err == nil || !strings.Contains(err.Error(), "echo of the request") || !strings.Contains(err.Error(), "[REDACTED]") {
				t.Errorf("%s: Ping error = %v, want the echo's message, redacted", name, err)
			}
			checkNoSecret(t, name, http.StatusBadRequest, err, tc.secrets)
		}
		tc.sim.ClearFaults()
	}
}

package backends_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/backends"
)

// fuzzServer answers every request with the fuzzed status and body, and
// after maxAnswers requests with 503, so that a body that pages to itself
// cannot make an iteration endless.
type fuzzServer struct {
	*httptest.Server
	mu      sync.Mutex
	status  int
	body    []byte
	answers int
}

const maxAnswers = 20

func newFuzzServer(f *testing.F) *fuzzServer {
	s := &fuzzServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		status, body := s.status, s.body
		s.answers++
		if s.answers > maxAnswers {
			status, body = http.StatusServiceUnavailable, nil
		}
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	f.Cleanup(s.Close)
	return s
}

func (s *fuzzServer) set(status int, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if status < 200 || status > 599 {
		status = http.StatusOK
	}
	s.status, s.body, s.answers = status, body, 0
}

// exercise calls the backend's reading methods on the fuzzed answers. They
// may fail, but must not panic or hang, and must not return a result
// together with an error-free nil.
func exercise(t *testing.T, be psa.Backend) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_ = be.Ping(ctx)
	if svc, err := be.GetService(ctx, "12"); err == nil && svc == nil {
		t.Error("GetService returned neither a service nor an error")
	}
	if ct, err := be.GetContract(ctx, "34"); err == nil && ct == nil {
		t.Error("GetContract returned neither a contract nor an error")
	}
	if _, err := be.ReadLines(ctx, []string{"34", "35"}, time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		if msg := err.Error(); strings.Contains(msg, "fuzz-secret") {
			t.Errorf("error contains the secret: %s", msg)
		}
	}
	_, _ = be.FindServices(ctx, "Backup")
}

func fuzzBackend(f *testing.F, system psa.System, seeds []string, cfg func(base string) backends.Config) {
	srv := newFuzzServer(f)
	for _, s := range seeds {
		f.Add(200, []byte(s))
		f.Add(400, []byte(s))
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		srv.set(status, body)
		be, err := backends.New(cfg(srv.URL))
		if err != nil {
			t.Fatalf("backends.New(%s): %v", system, err)
		}
		exercise(t, be)
	})
}

// FuzzAutotaskResponse feeds arbitrary answers to the Autotask client's
// decoding (items, item, pageDetails, errors arrays, threshold answers).
func FuzzAutotaskResponse(f *testing.F) {
	fuzzBackend(f, psa.SystemAutotask, []string{
		`{"item":{"id":12,"name":"Backup","isActive":true,"unitPrice":4.5}}`,
		`{"items":[{"id":1,"contractID":34,"serviceID":12,"units":3,"startDate":"2026-11-01T00:00:00Z","endDate":"2026-11-30T00:00:00Z"}],"pageDetails":{"count":1,"requestCount":500,"prevPageUrl":null,"nextPageUrl":null}}`,
		`{"errors":["Thread Threshold Exceeded"]}`,
		`{"errors":[{"message":"bad","field":"x"}],"Message":"no"}`,
	}, func(base string) backends.Config {
		return backends.Config{System: psa.SystemAutotask, Autotask: &backends.AutotaskConfig{
			Username: "api@msp.example", Secret: "fuzz-secret", IntegrationCode: "FUZZCODE", BaseURL: base + "/ATServicesRest/"}}
	})
}

// FuzzConnectWiseResponse feeds arbitrary answers to the ConnectWise
// client's decoding (catalog items, agreements, additions, error bodies).
func FuzzConnectWiseResponse(f *testing.F) {
	fuzzBackend(f, psa.SystemConnectWise, []string{
		`{"id":12,"identifier":"BACKUP","description":"Backup","inactiveFlag":false,"type":{"id":3,"name":"Service"}}`,
		`[{"id":1,"product":{"id":12,"identifier":"BACKUP"},"quantity":3,"agreementStatus":"Active","agreementId":34}]`,
		`{"id":34,"name":"Managed","company":{"id":5},"agreementStatus":"Active","type":{"id":1}}`,
		`{"code":"InvalidObject","message":"bad","errors":[{"code":"x","message":"y","resource":"r","field":"f"}]}`,
	}, func(base string) backends.Config {
		return backends.Config{System: psa.SystemConnectWise, ConnectWise: &backends.ConnectWiseConfig{
			BaseURL: base + "/v4_6_release/apis/3.0/", CompanyID: "acme", PublicKey: "pub", PrivateKey: "fuzz-secret", ClientID: "client"}}
	})
}

// FuzzKaseyaBMSResponse feeds arbitrary answers to the Kaseya BMS client's
// decoding (the success envelope, tokens, services, contracts).
func FuzzKaseyaBMSResponse(f *testing.F) {
	fuzzBackend(f, psa.SystemKaseyaBMS, []string{
		`{"success":true,"error":null,"result":{"accessToken":"t","refreshToken":"r","accessTokenExpireOn":"2099-01-01T00:00:00","refreshTokenExpireOn":"2099-01-01T00:00:00Z"}}`,
		`{"success":true,"result":{"id":12,"name":"Backup","isActive":true},"totalRecords":1}`,
		`{"success":false,"error":{"code":429,"message":"API call limit exceeded","details":"d","subErrors":["s"]}}`,
		`{"Message":"An error has occurred."}`,
	}, func(base string) backends.Config {
		return backends.Config{System: psa.SystemKaseyaBMS, KaseyaBMS: &backends.KaseyaBMSConfig{
			BaseURL: base + "/", Username: "api@msp.example", Password: "fuzz-secret", Tenant: "t"}}
	})
}

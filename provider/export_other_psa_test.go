package provider

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// TestAccExportStore_otherPSASystem switches the provider's PSA block from
// Autotask to ConnectWise PSA and leaves export_path as it was, with the
// configuration's ids changed to ConnectWise's: the plan fails naming the
// export's system, also one made with -refresh=false (which read nothing
// before), rather than the apply at its first write to the export; the
// error says to point the provider or the store back, not to restore the
// file, which is fine. Switched back, the plan is empty again.
func TestAccExportStore_otherPSASystem(t *testing.T) {
	t.Parallel()
	at := newTestEnv(t, psa.SystemAutotask)
	cw := newTestEnv(t, psa.SystemConnectWise)
	cw.exportPath = at.exportPath
	atAcme, cwAcme := at.addCustomerFixture("Acme"), cw.addCustomerFixture("Acme")
	config := func(e *testEnv, f customerFixture) string {
		return e.providerConfig() + fmt.Sprintf(`
resource "psa_customer_mapping" "acme" {
  customer_id = "cust-1"
  company_id  = %q
  contract_id = %q
}

resource "psa_integration" "this" {
  schedule = "daily 02:00"
}
`, f.company, f.contract)
	}
	otherPSA := regexp.MustCompile(`(?s)Mapping Export of Another PSA.*` + regexp.QuoteMeta(at.exportPath) +
		`.*belongs\s+to\s+PSA\s+system\s+"autotask",\s+but\s+the\s+provider\s+is\s+configured\s+for\s+"connectwise"`)
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{Config: config(at, atAcme)},
			// A PlanOnly step plans with -refresh=false first.
			{Config: config(cw, cwAcme), PlanOnly: true, ExpectError: otherPSA},
			{Config: config(cw, cwAcme), ExpectError: otherPSA},
			{
				Config: config(at, atAcme),
				Check: at.checkExport(func(doc *export.Document) error {
					m, ok := doc.Customer("sophos", "cust-1")
					if doc.PSA.System != psa.SystemAutotask || !ok || m.CompanyID != atAcme.company || m.ContractID != atAcme.contract {
						return fmt.Errorf("export = %+v, want Autotask's, with the Autotask ids", doc)
					}
					return nil
				}),
			},
		},
	})
}

// TestAccExportStore_failedReadOnce: a plan of several changes against a
// psa-syncd store whose export the provider cannot use (that of another
// PSA system, or a store answering 503) reads the export once, and each of
// the 4 changes reports the failure of that read, where each change read it again
// before, one request or more per change to a store that is failing. The
// provider plans one resource at a time (see serialPlans), so that no two
// reads share one request whether or not the failure is kept.
func TestAccExportStore_failedReadOnce(t *testing.T) {
	t.Parallel()
	cwDoc, err := export.New(psa.SystemConnectWise, "").Encode()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		serve func(w http.ResponseWriter, r *http.Request)
		want  *regexp.Regexp
	}{
		{
			name: "another PSA's export",
			serve: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("ETag", `"1"`)
				if r.Header.Get("If-None-Match") == `"1"` {
					w.WriteHeader(http.StatusNotModified)
					return
				}
				_, _ = w.Write(cwDoc)
			},
			want: regexp.MustCompile(`(?s)(Mapping Export of Another PSA.*){4}`),
		},
		{
			name: "a failing store",
			serve: func(w http.ResponseWriter, _ *http.Request) {
				http.Error(w, `{"error":"restarting"}`, http.StatusServiceUnavailable)
			},
			want: regexp.MustCompile(`(?s)(Unable to Read Mapping Export.*503 Service Unavailable.*){4}`),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, psa.SystemAutotask)
			var reads atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodGet {
					reads.Add(1)
				}
				tc.serve(w, r)
			}))
			t.Cleanup(srv.Close)
			e.exportURL, e.exportToken = srv.URL, workflowToken
			config := e.providerConfig() + `
resource "psa_integration" "this" {
  schedule = "daily 02:00"
}
`
			// Not chained with depends_on: Terraform does not plan the
			// dependents of a resource whose plan failed.
			for _, name := range []string{"acme", "globex", "initech"} {
				f := e.addCustomerFixture(name)
				config += fmt.Sprintf(`
resource "psa_customer_mapping" %[1]q {
  customer_id = %[1]q
  company_id  = %[2]q
  contract_id = %[3]q
}
`, name, f.company, f.contract)
			}
			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: serialPlans(testAccProtoV6ProviderFactories),
				Steps:                    []resource.TestStep{{Config: config, PlanOnly: true, ExpectError: tc.want}},
			})
			if n := reads.Load(); n != 1 {
				t.Errorf("the plan of 4 changes read the export %d times, want once", n)
			}
		})
	}
}

// serialPlans returns factories that serve the providers of factories
// answering one PlanResourceChange at a time, as terraform plan
// -parallelism=1 asks, which terraform-plugin-testing cannot pass.
func serialPlans(factories map[string]func() (tfprotov6.ProviderServer, error)) map[string]func() (tfprotov6.ProviderServer, error) {
	out := map[string]func() (tfprotov6.ProviderServer, error){}
	for name, f := range factories {
		out[name] = func() (tfprotov6.ProviderServer, error) {
			s, err := f()
			return &serialPlanServer{ProviderServer: s}, err
		}
	}
	return out
}

// serialPlanServer is a provider server that plans one resource at a time.
type serialPlanServer struct {
	tfprotov6.ProviderServer
	mu sync.Mutex
}

func (s *serialPlanServer) PlanResourceChange(ctx context.Context, req *tfprotov6.PlanResourceChangeRequest) (*tfprotov6.PlanResourceChangeResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ProviderServer.PlanResourceChange(ctx, req)
}

package provider

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// exampleDataServiceName finds the services that an example looks up with
// data "psa_service": they exist in the PSA before the example applies.
var exampleDataServiceName = regexp.MustCompile(`data\s+"psa_service"\s+"\w+"\s*\{\s*name\s*=\s*"([^"]+)"`)

// TestAccExamples_apply applies every resource and data source example of
// the docs (examples/resources and examples/data-sources; the ticket
// routing examples have TestAccTicketRoutingResource_examples, and
// psa_unmapped_usage's TestAccUnmappedUsageDataSource_psaSyncd) against the
// simulator of its PSA, seeded with the companies, contracts, services and
// billing code the examples name, and checks that a second plan is empty.
// TestExamples_validate only validates them, which misses a value that
// fails the plan-time checks against a PSA (an Autotask billing code of
// the wrong use type, a Kaseya BMS unit of measure, a name in use), or a
// plan that is not empty after the apply. Each file is applied with the
// files TestExamples_validate gives it: psa_service's resource.tf outside
// psa_service's own examples.
func TestAccExamples_apply(t *testing.T) {
	t.Parallel()
	examples := filepath.Join("..", "examples")
	var files []string
	for _, pattern := range []string{"resources/*/*.tf", "data-sources/*/*.tf"} {
		m, err := filepath.Glob(filepath.Join(examples, filepath.FromSlash(pattern)))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	service, err := os.ReadFile(filepath.Join(examples, "resources", "psa_service", "resource.tf"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, file := range files {
		dir, base := filepath.Base(filepath.Dir(file)), filepath.Base(file)
		// resource_many.tf looks its companies up with for_each, whose
		// string keys terraform-plugin-testing v1.16.0 cannot shim into
		// the state it reads after every step ("for_each is not
		// supported"); TestExamples_validate still covers it.
		// psa_unmapped_usage reads a psa-syncd, not the file store used
		// here: TestAccUnmappedUsageDataSource_psaSyncd applies it.
		if dir == "psa_ticket_routing" || dir == "psa_unmapped_usage" || strings.HasPrefix(base, "import") || base == "resource_many.tf" {
			continue
		}
		n++
		sys := psa.SystemAutotask
		switch {
		case strings.HasSuffix(base, "_connectwise.tf"):
			sys = psa.SystemConnectWise
		case strings.HasSuffix(base, "_kaseya_bms.tf"):
			sys = psa.SystemKaseyaBMS
		}
		t.Run(dir+"/"+base, func(t *testing.T) {
			t.Parallel()
			example, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			config := string(example)
			if dir != "psa_service" {
				config += "\n" + string(service)
			}
			var services []string
			for _, m := range exampleDataServiceName.FindAllStringSubmatch(config, -1) {
				services = append(services, m[1])
			}
			e := newTestEnv(t, sys)
			seedExampleObjects(e, services, strings.Contains(config, `"29682801"`))
			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps:                    []resource.TestStep{{Config: e.providerConfig() + config}},
			})
		})
	}
	if n < 10 {
		t.Fatalf("applied %d examples, want every resource and data source example", n)
	}
}

// seedExampleObjects adds to e's simulator what the examples look up or
// refer to: the companies Acme Corp and Globex with the contracts the
// examples name (one of them ended, for include_inactive), the services
// named (existing in the PSA), Autotask's billing code 29682801 (for the
// example that names it) and a
// Kaseya BMS service whose unit of measure is User.
func seedExampleObjects(e *testEnv, services []string, billingCode bool) {
	ended := time.Date(2025, time.December, 31, 0, 0, 0, 0, time.UTC)
	started := time.Date(2025, time.January, 1, 0, 0, 0, 0, time.UTC)
	// The renewal of Acme Managed Services (which runs through the
	// simulator clock's year), that psa_customer_mapping's example maps
	// ahead as next_contract_id.
	next := time.Now().UTC().Year() + 1
	renewalStart, renewalEnd := time.Date(next, time.January, 1, 0, 0, 0, 0, time.UTC), time.Date(next, time.December, 31, 0, 0, 0, 0, time.UTC)
	switch e.system {
	case psa.SystemAutotask:
		at := e.sim.Autotask()
		acme, globex := at.AddCompany("Acme Corp"), at.AddCompany("Globex")
		at.AddContract(psatest.AutotaskContract{CompanyID: acme, Name: "Acme Managed Services"})
		at.AddContract(psatest.AutotaskContract{CompanyID: acme, Name: "Acme Managed Services 2025", Status: "Inactive", StartDate: started, EndDate: ended})
		at.AddContract(psatest.AutotaskContract{CompanyID: acme, Name: "Acme Managed Services 2027", StartDate: renewalStart, EndDate: renewalEnd})
		at.AddContract(psatest.AutotaskContract{CompanyID: globex, Name: "Globex Security Bundle"})
		if billingCode {
			// A second one: the examples that name none take the default.
			at.AddBillingCode(psatest.AutotaskBillingCode{ID: 29682801, Name: "Security revenue", Active: true})
		}
		for _, s := range services {
			at.AddService(s, 10)
		}
	case psa.SystemConnectWise:
		cw := e.sim.ConnectWise()
		acme, globex := cw.AddCompany("Acme Corp"), cw.AddCompany("Globex")
		cw.AddAgreement(psatest.ConnectWiseAgreement{CompanyID: acme, Name: "Acme Managed Services"})
		cw.AddAgreement(psatest.ConnectWiseAgreement{CompanyID: acme, Name: "Acme Managed Services 2025", Status: "Expired", StartDate: started, EndDate: ended})
		cw.AddAgreement(psatest.ConnectWiseAgreement{CompanyID: acme, Name: "Acme Managed Services 2027", StartDate: renewalStart, EndDate: renewalEnd})
		cw.AddAgreement(psatest.ConnectWiseAgreement{CompanyID: globex, Name: "Globex Security Bundle"})
		for _, s := range services {
			cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Description: s, Price: 10})
		}
	case psa.SystemKaseyaBMS:
		k := e.sim.KaseyaBMS()
		acme, globex := k.AddAccount("Acme Corp"), k.AddAccount("Globex")
		k.AddContract(psatest.KaseyaBMSContract{AccountID: acme, Name: "Acme Managed Services"})
		k.AddContract(psatest.KaseyaBMSContract{AccountID: acme, Name: "Acme Managed Services 2025", Inactive: true, StartDate: started, EndDate: ended})
		k.AddContract(psatest.KaseyaBMSContract{AccountID: acme, Name: "Acme Managed Services 2027", StartDate: renewalStart, EndDate: renewalEnd})
		k.AddContract(psatest.KaseyaBMSContract{AccountID: globex, Name: "Globex Security Bundle"})
		k.AddServiceFull(psatest.KaseyaBMSService{Name: "Per-user support", UnitPrice: 5, UnitOfMeasureID: 2, Active: true})
		for _, s := range services {
			k.AddService(s, 10)
		}
	}
}

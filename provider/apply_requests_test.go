package provider

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// applyRequestLimits is, per PSA, the most requests of each route that the
// plan and apply of applyRequestsConfig may send; a route not listed must
// not be sent at all. Creating a service is one request; the contract
// checks of the customer mappings cost, in each of the two provider
// processes (plan, apply), the first batch by id and then the list of the
// tenant's contracts (see listAfter), which Autotask and ConnectWise count
// first, or the list alone where reading the first batch by id costs more;
// in Autotask and ConnectWise, whose contract reads do not tell whether the
// company is active, the companies of the checks cost the same: the first
// batch by id, then the companies of the contracts listed, at once (see
// readCompanies); the rest is a constant of metadata and sign-in, and in Autotask the
// service check of each process (the Services metadata, the default
// billing code and the services' names, read once for every service; in
// ConnectWise the catalog's product ids, in Kaseya BMS the services'
// names; see CheckServiceFields).
var applyRequestLimits = map[psa.System]map[string]int{
	psa.SystemAutotask: {
		"POST /ATServicesRest/V1.0/Services":                             applyServices,
		"POST /ATServicesRest/V1.0/Services/query":                       2,
		"POST /ATServicesRest/V1.0/Contracts/query":                      2 * 2,
		"POST /ATServicesRest/V1.0/Contracts/query/count":                2,
		"POST /ATServicesRest/V1.0/Companies/query":                      2 * 2,
		"POST /ATServicesRest/V1.0/BillingCodes/query":                   2,
		"GET /ATServicesRest/V1.0/BillingCodes/entityInformation/fields": 2,
		"GET /ATServicesRest/V1.0/Contracts/entityInformation/fields":    2,
		"GET /ATServicesRest/V1.0/Services/entityInformation/fields":     2,
		// The hourly budget, read by the plan and the apply of changes
		// that send requests at apply (checkPSABudget).
		"GET /ATServicesRest/V1.0/ThresholdInformation": 2,
	},
	psa.SystemConnectWise: {
		"POST /v4_6_release/apis/3.0/procurement/catalog":     applyServices,
		"GET /v4_6_release/apis/3.0/procurement/catalog":      2,
		"GET /v4_6_release/apis/3.0/finance/agreements":       2 * 2,
		"GET /v4_6_release/apis/3.0/finance/agreements/count": 2,
		"GET /v4_6_release/apis/3.0/company/companies":        2 * 2,
	},
	// Kaseya BMS reads one contract with three requests (it has no GET of a
	// contract), so its first batch is the list already: one contract
	// lookup and one page each of the summary and the account lookup, and
	// page 0 of the account lookup, which has no totalRecords (each
	// process's client learns where its pages start).
	psa.SystemKaseyaBMS: {
		"POST /v2/admin/finance/services/services": applyServices,
		"POST /v2/admin/finance/services/search":   2,
		"GET /v2/finance/contracts/lookup":         2,
		"GET /v2/finance/contracts/summary":        2,
		"GET /v2/crm/accounts/lookup":              2 * 2,
		"POST /v2/security/authenticate":           2,
	},
}

// The size of applyRequestsConfig: more customer mappings than one batch
// of Terraform's parallelism holds.
const (
	applyServices = 8
	applyMappings = 80 // product and customer mappings, half each
)

// refreshRequests is, per PSA, what a PlanOnly step of
// applyRequestsConfig (two plans, each in a provider process of its own)
// sends once everything is created: README's "two or three requests (the
// service query, plus Autotask's picklist that names the billing period,
// or Kaseya BMS's login), whatever the number of resources", with no
// request per resource. ConnectWise needs neither.
var refreshRequests = map[psa.System]map[string]int{
	psa.SystemAutotask: {
		"POST /ATServicesRest/V1.0/Services/query":                   2,
		"GET /ATServicesRest/V1.0/Services/entityInformation/fields": 2,
	},
	psa.SystemConnectWise: {
		"GET /v4_6_release/apis/3.0/procurement/catalog": 2,
	},
	psa.SystemKaseyaBMS: {
		"POST /v2/admin/finance/services/search": 2,
		"POST /v2/security/authenticate":         2,
	},
}

// TestAccApply_requests checks, by route, the PSA requests of planning and
// applying services, product mappings and customer mappings (what
// `terraform apply` does in two provider processes), and then of a refresh
// plan, so that a change that reads each created service back, checks each
// contract on its own, or reads each service of a refresh, fails here
// rather than only in make bench-provider.
func TestAccApply_requests(t *testing.T) {
	t.Parallel()
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			config := productConfig(e, applyServices, applyMappings)
			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{{
					PreConfig: e.sim.ResetRequests,
					Config:    config,
					Check: func(*terraform.State) error {
						got := requestRoutes(e.sim.Requests())
						limits := applyRequestLimits[sys]
						var errs []string
						for _, route := range slices.Sorted(maps.Keys(got)) {
							limit, ok := limits[route]
							switch {
							case !ok:
								errs = append(errs, fmt.Sprintf("%d× %s, a route the apply must not use", got[route], route))
							case got[route] > limit:
								errs = append(errs, fmt.Sprintf("%d× %s, want at most %d", got[route], route, limit))
							}
						}
						for route, limit := range limits {
							if limit == applyServices && got[route] != applyServices {
								errs = append(errs, fmt.Sprintf("%d× %s, want one per service created (%d)", got[route], route, applyServices))
							}
						}
						if len(errs) > 0 {
							return fmt.Errorf("plan and apply sent %s:\n%s", requestKinds(e.sim.Requests()), strings.Join(errs, "\n"))
						}
						return nil
					},
				}, {
					// A refresh plan of everything the apply created.
					PreConfig: e.sim.ResetRequests,
					Config:    config,
					PlanOnly:  true,
				}, {
					PreConfig: func() {
						got := requestRoutes(e.sim.Requests())
						if !maps.Equal(got, refreshRequests[sys]) {
							t.Errorf("the refresh plans of %d services and %d mappings sent %s, want %v",
								applyServices, applyMappings, requestKinds(e.sim.Requests()), refreshRequests[sys])
						}
					},
					Config:   config,
					PlanOnly: true,
				}},
			})
		})
	}
}

package provider

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// addDatedContract adds a recurring-service contract of companyID named
// name, running from start to end (zero: no end date), and returns its id.
func (e *testEnv) addDatedContract(companyID, name string, start, end time.Time) string {
	n, err := strconv.ParseInt(companyID, 10, 64)
	if err != nil {
		panic(fmt.Sprintf("company id %q: %v", companyID, err))
	}
	switch e.system {
	case psa.SystemConnectWise:
		return id(e.sim.ConnectWise().AddAgreement(psatest.ConnectWiseAgreement{CompanyID: n, Name: name, StartDate: start, EndDate: end}))
	case psa.SystemKaseyaBMS:
		return strconv.Itoa(e.sim.KaseyaBMS().AddContract(psatest.KaseyaBMSContract{AccountID: int(n), Name: name, StartDate: start, EndDate: end}))
	}
	return id(e.sim.Autotask().AddContract(psatest.AutotaskContract{CompanyID: n, Name: name, StartDate: start, EndDate: end}))
}

// contractRead matches the routes that read contracts, in each PSA.
var contractRead = regexp.MustCompile(`Contracts/query$|finance/agreements$|finance/contracts/(lookup|summary)$`)

// TestAccCustomerMappingResource_renewal maps a customer's renewal ahead
// with next_contract_id: the plan checks it as it checks contract_id (the
// company's, not another customer's) and fails unless it starts after
// contract_id ends, naming both dates; the export holds it; and moving it
// into contract_id later writes the mapping psa-syncd already bills.
func TestAccCustomerMappingResource_renewal(t *testing.T) {
	t.Parallel()
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			acme := e.addCustomerFixture("Acme")
			globex := e.addCustomerFixture("Globex")
			today := dayOf(time.Now())
			oldEnd := today.AddDate(0, 3, 0)
			old := e.addDatedContract(acme.company, "Acme Year 1", today.AddDate(-1, 0, 0), oldEnd)
			renewal := e.addDatedContract(acme.company, "Acme Year 2", oldEnd.AddDate(0, 0, 1), oldEnd.AddDate(1, 0, 0))
			overlapping := e.addDatedContract(acme.company, "Acme Overlap", oldEnd, oldEnd.AddDate(1, 0, 0))
			endless := e.addDatedContract(acme.company, "Acme Ongoing", today.AddDate(-1, 0, 0), time.Time{})
			globexNext := e.addDatedContract(globex.company, "Globex Year 2", oldEnd.AddDate(0, 0, 1), oldEnd.AddDate(1, 0, 0))
			words := func(s string) string { return strings.ReplaceAll(regexp.QuoteMeta(s), " ", `\s+`) }
			mapping := func(contract, next string) string {
				extra := ""
				if next != "" {
					extra = fmt.Sprintf("  next_contract_id = %q", next)
				}
				return testAccCustomerMappingResourceConfig(e, "cust-1", acme.company, contract, extra)
			}
			steps := []resource.TestStep{
				{
					Config:      mapping(old, overlapping),
					ExpectError: regexp.MustCompile(`(?s)Renewal Starts Before Its Contract Ends.*` + words(fmt.Sprintf("starts on %s, but contract %s", oldEnd.Format(time.DateOnly), old)) + `.*` + words("ends on "+oldEnd.Format(time.DateOnly))),
				},
			}
			if sys == psa.SystemConnectWise { // Autotask and Kaseya BMS contracts always end
				steps = append(steps, resource.TestStep{
					Config:      mapping(endless, renewal),
					ExpectError: regexp.MustCompile(`(?s)PSA Contract Has No End Date.*` + words(fmt.Sprintf("Contract %s (\"Acme Ongoing\")", endless))),
				})
			}
			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: append(steps, []resource.TestStep{
					{
						Config:      mapping(old, globexNext),
						ExpectError: regexp.MustCompile(`(?s)Contract Belongs to Another Company.*belongs\s+to\s+company\s+` + globex.company),
					},
					{
						Config: mapping(old, renewal) + fmt.Sprintf(`
resource "psa_customer_mapping" "other" {
  customer_id = "cust-2"
  company_id  = %q
  contract_id = %q
}
`, acme.company, renewal),
						ExpectError: regexp.MustCompile(`(?s)Contract Mapped by Two Customers.*` + renewal),
					},
					{
						// The renewal is read with contract_id, in one
						// bulk read per provider process (plan, apply).
						PreConfig: e.sim.ResetRequests,
						Config:    mapping(old, renewal),
						ConfigStateChecks: []statecheck.StateCheck{
							statecheck.ExpectKnownValue("psa_customer_mapping.test", tfjsonpath.New("next_contract_id"), knownvalue.StringExact(renewal)),
						},
						Check: resource.ComposeTestCheckFunc(func(*terraform.State) error {
							got := requestRoutes(e.sim.Requests())
							for route, n := range got {
								if contractRead.MatchString(route) && n > 2 {
									return fmt.Errorf("plan and apply of a mapping with a renewal sent %d× %s, want one per process (2): %v", n, route, got)
								}
							}
							return nil
						}, e.checkExport(customerMappingIs(export.CustomerMapping{Source: "sophos", CustomerID: "cust-1",
							CompanyID: acme.company, ContractID: old, NextContractID: renewal, UsageSync: true}))),
					},
					{
						// The renewal has taken over: moved into
						// contract_id at leisure.
						Config: mapping(renewal, ""),
						ConfigStateChecks: []statecheck.StateCheck{
							statecheck.ExpectKnownValue("psa_customer_mapping.test", tfjsonpath.New("next_contract_id"), knownvalue.Null()),
						},
						Check: e.checkExport(func(doc *export.Document) error {
							if err := customerMappingIs(export.CustomerMapping{Source: "sophos", CustomerID: "cust-1",
								CompanyID: acme.company, ContractID: renewal, UsageSync: true})(doc); err != nil {
								return err
							}
							data, err := doc.Encode()
							if err != nil {
								return err
							}
							if strings.Contains(string(data), "next_contract_id") {
								return fmt.Errorf("the export writes next_contract_id unset:\n%s", data)
							}
							return nil
						}),
					},
				}...),
			})
		})
	}
}

// TestAccApply_requestsWithRenewals: customer mappings that each name a
// renewal plan and apply within the requests of applyRequestLimits, and
// refresh with refreshRequests: the renewals join the bulk reads of the
// contracts, with no request of their own.
func TestAccApply_requestsWithRenewals(t *testing.T) {
	t.Parallel()
	for _, sys := range testSystems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			today := dayOf(time.Now())
			end := today.AddDate(0, 3, 0)
			var list strings.Builder
			n := applyMappings / 2
			for i := range n {
				company := e.addCompany(fmt.Sprintf("Renewal Company %04d", i))
				contract := e.addDatedContract(company, fmt.Sprintf("Renewal Company %04d Year 1", i), today.AddDate(-1, 0, 0), end)
				next := e.addDatedContract(company, fmt.Sprintf("Renewal Company %04d Year 2", i), end.AddDate(0, 0, 1), end.AddDate(1, 0, 0))
				fmt.Fprintf(&list, "    { company = %q, contract = %q, next = %q },\n", company, contract, next)
			}
			config := e.providerConfig() + customersLocal(list.String()) + fmt.Sprintf(`
resource "psa_customer_mapping" "c" {
  count            = %d
  customer_id      = "customer-${count.index}"
  company_id       = local.customers[count.index].company
  contract_id      = local.customers[count.index].contract
  next_contract_id = local.customers[count.index].next
}
`, n)
			check := func(label string, limits map[string]int, exact bool) func() error {
				return func() error {
					got := requestRoutes(e.sim.Requests())
					var errs []string
					for _, route := range slices.Sorted(maps.Keys(got)) {
						limit, ok := limits[route]
						switch {
						case !ok:
							errs = append(errs, fmt.Sprintf("%d× %s, a route the %s must not use", got[route], route, label))
						case got[route] > limit:
							errs = append(errs, fmt.Sprintf("%d× %s, want at most %d", got[route], route, limit))
						}
					}
					if exact && !maps.Equal(got, limits) {
						errs = append(errs, fmt.Sprintf("want exactly %v", limits))
					}
					if len(errs) > 0 {
						return fmt.Errorf("the %s of %d customer mappings with renewals sent %s:\n%s", label, n, requestKinds(e.sim.Requests()), strings.Join(errs, "\n"))
					}
					return nil
				}
			}
			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{{
					PreConfig: e.sim.ResetRequests,
					Config:    config,
					Check:     func(*terraform.State) error { return check("plan and apply", applyRequestLimits[sys], false)() },
				}, {
					PreConfig: e.sim.ResetRequests,
					Config:    config,
					PlanOnly:  true,
				}, {
					PreConfig: func() {
						// No service is read: the refresh of customer
						// mappings alone reads nothing but the sign-in.
						want := maps.Clone(refreshRequests[sys])
						for route := range want {
							if !strings.Contains(route, "authenticate") {
								delete(want, route)
							}
						}
						if err := check("refresh plans", want, false)(); err != nil {
							t.Error(err)
						}
					},
					Config:   config,
					PlanOnly: true,
				}},
			})
		})
	}
}

// TestContractConflict_renewal: the apply refuses a customer whose renewal
// is another customer's contract or renewal in the export (both with usage
// sync on, same source), as it refuses one contract for two customers: from
// the renewal's start psa-syncd would bill both on it.
func TestContractConflict_renewal(t *testing.T) {
	t.Parallel()
	r := &customerMappingResource{data: &providerData{exportPath: "psa-mappings.json"}}
	doc := export.New(psa.SystemAutotask, "")
	doc.PutCustomer(export.CustomerMapping{Source: "sophos", CustomerID: "b", CompanyID: "2", ContractID: "20", NextContractID: "21", UsageSync: true})
	for _, tc := range []struct {
		name string
		m    export.CustomerMapping
		want string
	}{
		{"renewal is the other's contract", export.CustomerMapping{ContractID: "10", NextContractID: "20"}, "Contract 20 is mapped by customer sophos/b"},
		{"renewal is the other's renewal", export.CustomerMapping{ContractID: "10", NextContractID: "21"}, "Contract 21 is mapped by customer sophos/b"},
		{"contract is the other's renewal", export.CustomerMapping{ContractID: "21"}, "Contract 21 is mapped by customer sophos/b"},
		{"own contracts", export.CustomerMapping{ContractID: "10", NextContractID: "11"}, ""},
	} {
		m := tc.m
		m.Source, m.CustomerID, m.CompanyID, m.UsageSync = "sophos", "a", "1", true
		err := r.contractConflict(doc, m)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v, want no conflict", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

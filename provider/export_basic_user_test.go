package provider

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
	"golang.org/x/crypto/bcrypt"

	"github.com/psa-sync/terraform-provider-psa/daemon"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// TestAccExportStore_psaSyncdBasicUser: a psa-syncd that is the export
// store (export_url: self) behind a listener with basic_auth_users takes
// the provider's export reads, its first write (If-None-Match: *) and a
// conditional update (If-Match) when export_url names the user whose
// basic password is export_token; the data source reads that psa-syncd's
// API the same way. Without the user the plan fails with the 401 and a
// hint to name one; a user without export_token fails the plan before any
// request. A reader user, whose password is not the API token (the
// pull-request plan job's, in docs/guides/ci-workflow.md), plans with the
// export and the data source read, and its apply of a change is refused.
func TestAccExportStore_psaSyncdBasicUser(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	serverDir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte(workflowToken), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	const readerPassword = "ci-plan-reader-password"
	readerHash, err := bcrypt.GenerateFromPassword([]byte(readerPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webConfig := filepath.Join(serverDir, "web-config.yml")
	users := "basic_auth_users:\n  automation: " + string(hash) + "\n  ci-plan: " + string(readerHash) + "\n"
	if err := os.WriteFile(webConfig, []byte(users), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := startWorkflowDaemonWith(t, e, serverDir, daemon.ExportSelf, ln, daemon.Options{WebConfigFile: webConfig})
	withUser := "http://automation@" + ln.Addr().String()
	reader := "http://ci-plan@" + ln.Addr().String()
	acme := e.addCustomerFixture("Acme")
	service := e.addService("Sophos Intercept X Advanced", 4.5)
	config := func(url, token, contract, extra string) string {
		e.exportURL, e.exportToken = url, token
		return e.providerConfig() + fmt.Sprintf(`
resource "psa_product_mapping" "cixa" {
  source     = "file"
  product    = "CIXA-MSP"
  service_id = %[1]q
}

resource "psa_customer_mapping" "acme" {
  source      = "file"
  customer_id = "cust-acme"
  company_id  = %[2]q
  contract_id = %[3]q
}
%[4]s`, service, acme.company, contract, extra)
	}
	uses := func(contract string) resource.TestCheckFunc {
		return func(*terraform.State) error { return waitForExport(d, "psa-syncd", contract) }
	}
	bearer := config("http://"+ln.Addr().String(), workflowToken, acme.contract, "")
	noToken := config(withUser, "", acme.contract, "")
	first := config(withUser, workflowToken, acme.contract, "")
	readerPlan := config(reader, readerPassword, acme.contract, `data "psa_unmapped_usage" "u" {}`)
	readerApply := config(reader, readerPassword, acme.otherContract, "")
	moved := config(withUser, workflowToken, acme.otherContract, `data "psa_unmapped_usage" "u" {}`)
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config:      bearer,
				ExpectError: regexp.MustCompile(`401[\s\S]*basic_auth_users[\s\S]*https://USER@host:port`),
			},
			{
				Config:      noToken,
				ExpectError: regexp.MustCompile(`Missing Mapping Export Token[\s\S]*names\s+user\s+"automation"`),
			},
			{Config: first, Check: uses(acme.contract)},
			{Config: readerPlan, PlanOnly: true},
			{
				Config:      readerApply,
				ExpectError: regexp.MustCompile(`401[\s\S]*the\s+basic\s+password\s+is\s+not\s+the\s+API\s+token`),
			},
			{
				Config: moved,
				Check:  uses(acme.otherContract),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("data.psa_unmapped_usage.u", tfjsonpath.New("url"), knownvalue.StringExact(withUser)),
				},
			},
		},
	})
}

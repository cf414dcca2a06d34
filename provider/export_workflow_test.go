package provider

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/psa-sync/terraform-provider-psa/daemon"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export/s3test"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// workflowPickupTimeout bounds the wait for psa-syncd to poll a new export
// (it polls every workflowPollInterval); it is a deadline, not an
// assertion on speed.
const (
	workflowPollInterval  = 50 * time.Millisecond
	workflowPickupTimeout = time.Minute
	workflowToken         = "workflow-token"
)

// TestExportWorkflow is the CI workflow end to end, once per export store:
// terraform apply in one directory (the CI runner) writes the export;
// psa-syncd with its own directory and state (the server) picks it up and
// syncs the simulator; a second apply that moves the customer to another
// contract reaches the running psa-syncd (at once for the psa-syncd store,
// at its next poll for the others), the next pass holds the new contract's
// line while the old contract bills, and an approval of it bills it.
func TestExportWorkflow(t *testing.T) {
	t.Parallel()
	for _, store := range []string{"file", "s3", "psa-syncd"} {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, psa.SystemAutotask)
			acme := e.addCustomerFixture("Acme")
			service := e.addService("Sophos Intercept X Advanced", 4.5)

			// The server: psa-syncd's own directory, state and listener.
			serverDir := t.TempDir()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			var daemonStore string
			switch store {
			case "file":
				daemonStore = e.exportPath
			case "s3":
				e.exportURL = s3test.Start(t).ObjectURL("ci/psa-mappings.json")
				daemonStore = e.exportURL
			case "psa-syncd":
				e.exportURL, e.exportToken = "http://"+ln.Addr().String(), workflowToken
				daemonStore = daemon.ExportSelf
			}
			d := startWorkflowDaemon(t, e, serverDir, daemonStore, ln)

			contractUnits := func(contract string) int64 {
				n, _ := e.sim.Autotask().Units(mustID(contract), mustID(service), time.Now())
				return n
			}
			// synced waits until psa-syncd uses the export with the mapping
			// on contract, runs a pass and checks that it billed it. A
			// customer moved from another contract (moved) has its new
			// line held while the old one bills (usage.HoldMoved): the
			// pass must hold it, and an approval of the line bill it.
			synced := func(contract string, moved bool) resource.TestCheckFunc {
				return func(*terraform.State) error {
					if err := waitForExport(d, store, contract); err != nil {
						return err
					}
					res, err := d.SyncOnce(t.Context(), usage.PassOptions{Trigger: usage.TriggerManual})
					if err != nil {
						return fmt.Errorf("pass: %w", err)
					}
					if moved {
						held := false
						for _, c := range res.Plan.Changes {
							held = held || (c.ContractID == contract && c.Hold() == usage.HoldMoved)
						}
						if got := contractUnits(contract); got != 0 || !held {
							return fmt.Errorf("contract %s has %d units after the pass (held as moved: %t), want its line held while the old contract bills", contract, got, held)
						}
						units := int64(7)
						if _, err := d.SyncOnce(t.Context(), usage.PassOptions{Trigger: usage.TriggerManual, Customer: "cust-acme",
							Approve: true, ApproveService: service, ApproveUnits: &units}); err != nil {
							return fmt.Errorf("approving pass: %w", err)
						}
					}
					if got := contractUnits(contract); got != 7 {
						return fmt.Errorf("contract %s has %d units after the pass, want 7", contract, got)
					}
					return nil
				}
			}
			config := func(contract string) string {
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
`, service, acme.company, contract)
			}
			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{
					{Config: config(acme.contract), Check: synced(acme.contract, false)},
					{Config: config(acme.otherContract), Check: synced(acme.otherContract, true)},
				},
			})
		})
	}
}

// startWorkflowDaemon runs psa-syncd against the test's simulator, reading
// usage from a file and the export from exportURL, until the test ends.
func startWorkflowDaemon(t *testing.T, e *testEnv, dir, exportURL string, ln net.Listener) *daemon.Daemon {
	t.Helper()
	return startWorkflowDaemonWith(t, e, dir, exportURL, ln, daemon.Options{})
}

// startWorkflowDaemonWith is startWorkflowDaemon with opts (such as a
// WebConfigFile); its Listener and WatchInterval are set here.
func startWorkflowDaemonWith(t *testing.T, e *testEnv, dir, exportURL string, ln net.Listener, opts daemon.Options) *daemon.Daemon {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "usage.csv"), []byte("customer_id,product,quantity\ncust-acme,CIXA-MSP,7\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`export_url: %q
state_dir: state
psa:
  system: autotask
  autotask:
    username: %q
    secret: %q
    integration_code: %q
    base_url: %q
source:
  type: file
  file:
    path: usage.csv
web:
  api_token: %q
`, exportURL, psatest.DefaultAutotaskUsername, psatest.DefaultAutotaskSecret, psatest.DefaultAutotaskIntegrationCode,
		e.sim.AutotaskBaseURL(), workflowToken)
	cfgPath := filepath.Join(dir, "psa-syncd.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := daemon.Load(cfgPath, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	opts.Listener, opts.WatchInterval = ln, workflowPollInterval
	d, err := daemon.New(c, cfgPath, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("psa-syncd: %v", err)
		}
	})
	return d
}

// waitForExport waits until psa-syncd uses an export that maps the
// customer to contract. psa-syncd as the store must already use it when
// the apply returns.
func waitForExport(d *daemon.Daemon, store, contract string) error {
	uses := func() bool {
		doc := d.Export()
		if doc == nil {
			return false
		}
		m, ok := doc.Customer("file", "cust-acme")
		return ok && m.ContractID == contract
	}
	if store == "psa-syncd" {
		if !uses() {
			return fmt.Errorf("psa-syncd does not use the export the apply just wrote to it")
		}
		return nil
	}
	deadline := time.Now().Add(workflowPickupTimeout)
	for !uses() {
		if time.Now().After(deadline) {
			return fmt.Errorf("psa-syncd did not pick up the new export from the %s store within %s", store, workflowPickupTimeout)
		}
		time.Sleep(workflowPollInterval)
	}
	return nil
}

// TestExportWorkflow_replacementStopped: an apply that replaces the
// mappings with create_before_destroy stops after creating the new
// instances (a failing resource after them); the next apply destroys the
// old, deposed instances alone. psa-syncd, reading each store, must still
// find both mappings in the export that apply leaves and bill the
// customer, rather than report its usage as unmapped until another apply.
func TestExportWorkflow_replacementStopped(t *testing.T) {
	t.Parallel()
	for _, store := range []string{"file", "s3", "psa-syncd"} {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, psa.SystemAutotask)
			acme := e.addCustomerFixture("Acme")
			service := e.addService("Sophos Intercept X Advanced", 4.5)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			daemonStore := e.exportPath
			switch store {
			case "s3":
				e.exportURL = s3test.Start(t).ObjectURL("ci/psa-mappings.json")
				daemonStore = e.exportURL
			case "psa-syncd":
				e.exportURL, e.exportToken = "http://"+ln.Addr().String(), workflowToken
				daemonStore = daemon.ExportSelf
			}
			d := startWorkflowDaemon(t, e, t.TempDir(), daemonStore, ln)

			// synced waits until psa-syncd uses the store's export as the
			// apply left it, runs a pass and checks that the customer's
			// usage is mapped and billed.
			synced := func(*terraform.State) error {
				doc, err := e.readExport()
				if err != nil {
					return err
				}
				deadline := time.Now().Add(workflowPickupTimeout)
				for cur := d.Export(); cur == nil || cur.Revision < doc.Revision; cur = d.Export() {
					if store == "psa-syncd" || time.Now().After(deadline) {
						return fmt.Errorf("psa-syncd does not use revision %d of the export from the %s store", doc.Revision, store)
					}
					time.Sleep(workflowPollInterval)
				}
				res, err := d.SyncOnce(t.Context(), usage.PassOptions{Trigger: usage.TriggerManual})
				if err != nil {
					return fmt.Errorf("pass: %w", err)
				}
				if u := res.Plan.Unmapped; len(u.Customers) > 0 || len(u.Products) > 0 {
					return fmt.Errorf("the pass found unmapped usage: customers %+v, products %+v", u.Customers, u.Products)
				}
				if got, _ := e.sim.Autotask().Units(mustID(acme.contract), mustID(service), time.Now()); got != 7 {
					return fmt.Errorf("contract %s has %d units after the pass, want 7", acme.contract, got)
				}
				return nil
			}
			config := func(trigger, command string) string {
				return e.providerConfig() + fmt.Sprintf(`
resource "terraform_data" "trigger" {
  input = %[1]q
}

resource "psa_product_mapping" "cixa" {
  source     = "file"
  product    = "CIXA-MSP"
  service_id = %[2]q

  lifecycle {
    create_before_destroy = true
    replace_triggered_by  = [terraform_data.trigger]
  }
}

resource "psa_customer_mapping" "acme" {
  source      = "file"
  customer_id = "cust-acme"
  company_id  = %[3]q
  contract_id = %[4]q

  lifecycle {
    create_before_destroy = true
    replace_triggered_by  = [terraform_data.trigger]
  }
}

resource "terraform_data" "gate" {
  triggers_replace = [terraform_data.trigger.output, psa_product_mapping.cixa.id, psa_customer_mapping.acme.id]

  provisioner "local-exec" {
    command = %[5]q
  }

  lifecycle {
    create_before_destroy = true
    replace_triggered_by  = [terraform_data.trigger]
  }
}
`, trigger, service, acme.company, acme.contract, command)
			}
			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
				Steps: []resource.TestStep{
					{Config: config("one", "true"), Check: synced},
					{Config: config("two", "exit 1"), ExpectError: regexp.MustCompile(`local-exec`)},
					{Config: config("two", "true"), Check: synced},
				},
			})
		})
	}
}

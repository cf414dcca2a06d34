package provider

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
	"golang.org/x/crypto/bcrypt"

	"github.com/psa-sync/terraform-provider-psa/daemon"
	"github.com/psa-sync/terraform-provider-psa/daemon/source"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// TestAccUnmappedUsageDataSource_psaSyncd reads a real psa-syncd, the
// provider's export store (export_url: self): after a pass over usage with
// an unmapped customer, an unmapped product and usage of no customer, the
// data source lists them; the docs' example fails the plan naming what to
// map; and once the plan maps them (in the example's lists) it passes.
func TestAccUnmappedUsageDataSource_psaSyncd(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	acme := e.addCustomerFixture("Acme")
	service := e.addService("Sophos Intercept X Advanced", 4.5)
	serverDir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.exportURL, e.exportToken = "http://"+ln.Addr().String(), workflowToken
	d := startWorkflowDaemon(t, e, serverDir, daemon.ExportSelf, ln)
	usageCSV := "customer_id,customer_name,product,quantity\n" +
		"cust-acme,Acme,CIXA-MSP,7\n" +
		"cust-acme,Acme,NEWSKU,2\n" +
		"cust-beta,Beta Ltd,CIXA-MSP,3\n" +
		",,CIXA-MSP,4\n" +
		",,OTHER,0\n"
	if err := os.WriteFile(filepath.Join(serverDir, "usage.csv"), []byte(usageCSV), 0o600); err != nil {
		t.Fatal(err)
	}
	mappings := fmt.Sprintf(`
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
`, service, acme.company, acme.contract)
	pass := func(*terraform.State) error {
		if _, err := d.SyncOnce(t.Context(), usage.PassOptions{Trigger: usage.TriggerManual}); err != nil {
			return fmt.Errorf("pass: %w", err)
		}
		return nil
	}
	example, err := os.ReadFile(filepath.Join("..", "examples", "data-sources", "psa_unmapped_usage", "data-source.tf"))
	if err != nil {
		t.Fatal(err)
	}
	// The example's lists with the ids of this test's usage: the
	// customers and products the configuration maps, or is about to.
	exampleWith := func(customers, products string) string {
		s := regexp.MustCompile(`(?m)^  mapped_customers = .*$`).ReplaceAllString(string(example), "  mapped_customers = "+customers)
		s = regexp.MustCompile(`(?m)^  mapped_products  = .*$`).ReplaceAllString(s, "  mapped_products  = "+products)
		return regexp.MustCompile(`(?m)^  usage_source     = .*$`).ReplaceAllString(s, `  usage_source     = "file"`)
	}
	const addr = "data.psa_unmapped_usage.last_pass"
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{Config: e.providerConfig() + mappings, Check: pass},
			{
				Config: e.providerConfig() + mappings + `
data "psa_unmapped_usage" "last_pass" {}
`,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("url"), knownvalue.StringExact(e.exportURL)),
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("has_unmapped"), knownvalue.Bool(true)),
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("period"), knownvalue.StringRegexp(regexp.MustCompile(`^\d{4}-\d{2}$`))),
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("computed_at"), knownvalue.StringRegexp(regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T`))),
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("customers"), knownvalue.ListExact([]knownvalue.Check{
						knownvalue.ObjectExact(map[string]knownvalue.Check{
							"customer_id":   knownvalue.StringExact("cust-beta"),
							"customer_name": knownvalue.StringExact("Beta Ltd"),
							"products":      knownvalue.ListExact([]knownvalue.Check{knownvalue.StringExact("CIXA-MSP")}),
							"quantity":      knownvalue.Int64Exact(3),
						}),
					})),
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("products"), knownvalue.ListExact([]knownvalue.Check{
						knownvalue.ObjectExact(map[string]knownvalue.Check{
							"product":      knownvalue.StringExact("NEWSKU"),
							"product_name": knownvalue.Null(),
							"customers":    knownvalue.Int64Exact(1),
							"quantity":     knownvalue.Int64Exact(2),
						}),
					})),
					// OTHER's unassigned 0 bills nobody nothing: not listed.
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("unassigned"), knownvalue.ListExact([]knownvalue.Check{
						knownvalue.ObjectExact(map[string]knownvalue.Check{
							"product":      knownvalue.StringExact("CIXA-MSP"),
							"product_name": knownvalue.Null(),
							"quantity":     knownvalue.Int64Exact(4),
						}),
					})),
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("unreported"), knownvalue.ListSizeExact(0)),
				},
			},
			{
				// The docs' example fails the plan, naming what to map.
				Config:      e.providerConfig() + mappings + exampleWith(`["cust-acme"]`, `["CIXA-MSP"]`),
				ExpectError: regexp.MustCompile(`Customers\s+to\s+map:\s+cust-beta\s+\(Beta\s+Ltd,\s+3\)\.\s+Products\s+to\s+map:\s+NEWSKU\s+\(2\)`),
			},
			{
				// The pull request that maps them (the mappings are not
				// applied yet, so psa-syncd still lists them) passes.
				Config: e.providerConfig() + mappings + exampleWith(`["cust-acme", "cust-beta"]`, `["CIXA-MSP", "NEWSKU"]`),
			},
		},
	})
}

// TestAccUnmappedUsageDataSource_psaSyncdURL reads a real psa-syncd that
// is not the export store: the mapping export is a file, which psa-syncd
// reads too, and the provider reaches psa-syncd's read-only API through
// psa_syncd_url (with psa_syncd_api_token). The report names the usage
// source psa-syncd read; a data source that expects another source fails
// the plan, and the docs' example (whose source is set) passes once the
// plan maps what it lists.
func TestAccUnmappedUsageDataSource_psaSyncdURL(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	acme := e.addCustomerFixture("Acme")
	service := e.addService("Sophos Intercept X Advanced", 4.5)
	serverDir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	syncdURL := "http://" + ln.Addr().String()
	d := startWorkflowDaemon(t, e, serverDir, e.exportPath, ln)
	if err := os.WriteFile(filepath.Join(serverDir, "usage.csv"), []byte("customer_id,customer_name,product,quantity\n"+
		"cust-acme,Acme,CIXA-MSP,7\ncust-beta,Beta Ltd,CIXA-MSP,3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mappings := fmt.Sprintf(`
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
`, service, acme.company, acme.contract)
	provider := e.providerConfigWith(fmt.Sprintf("  psa_syncd_url = %q\n  psa_syncd_api_token = %q\n", syncdURL, workflowToken))
	pass := func(*terraform.State) error {
		if err := waitForExport(d, "file", acme.contract); err != nil {
			return err
		}
		if _, err := d.SyncOnce(t.Context(), usage.PassOptions{Trigger: usage.TriggerManual}); err != nil {
			return fmt.Errorf("pass: %w", err)
		}
		return nil
	}
	example, err := os.ReadFile(filepath.Join("..", "examples", "data-sources", "psa_unmapped_usage", "data-source.tf"))
	if err != nil {
		t.Fatal(err)
	}
	exampleWith := func(src, customers string) string {
		s := regexp.MustCompile(`(?m)^  mapped_customers = .*$`).ReplaceAllString(string(example), "  mapped_customers = "+customers)
		s = regexp.MustCompile(`(?m)^  mapped_products  = .*$`).ReplaceAllString(s, `  mapped_products  = ["CIXA-MSP"]`)
		return regexp.MustCompile(`(?m)^  usage_source     = .*$`).ReplaceAllString(s, "  usage_source     = "+strconv.Quote(src))
	}
	const addr = "data.psa_unmapped_usage.u"
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{Config: provider + mappings, Check: pass},
			{
				Config: provider + mappings + `
data "psa_unmapped_usage" "u" {}
`,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("url"), knownvalue.StringExact(syncdURL)),
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("source"), knownvalue.StringExact("file")),
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("has_unmapped"), knownvalue.Bool(true)),
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("customers"), knownvalue.ListExact([]knownvalue.Check{
						knownvalue.ObjectPartial(map[string]knownvalue.Check{"customer_id": knownvalue.StringExact("cust-beta")}),
					})),
				},
			},
			{
				// The psa-syncd of another source: its lists say nothing
				// of sophos' customers, so the plan fails.
				Config: provider + mappings + `
data "psa_unmapped_usage" "u" {
  source = "sophos"
}
`,
				ExpectError: regexp.MustCompile(`psa-syncd Reads Another Usage Source[\s\S]*reads\s+the\s+usage\s+source\s+"file",\s+not\s+"sophos"[\s\S]*Set\s+psa_syncd_url`),
			},
			{
				Config:      provider + mappings + exampleWith("file", `["cust-acme"]`),
				ExpectError: regexp.MustCompile(`Customers\s+to\s+map:\s+cust-beta\s+\(Beta\s+Ltd,\s+3\)`),
			},
			{Config: provider + mappings + exampleWith("file", `["cust-acme", "cust-beta"]`)},
		},
	})
}

// TestAccUnmappedUsageDataSource_psaSyncdURLErrorPageRedacted: a proxy in
// front of the psa-syncd of psa_syncd_url that echoes the request's
// headers in its error page: the plan quotes the page without
// psa_syncd_api_token, and the export store's token is not sent there.
func TestAccUnmappedUsageDataSource_psaSyncdURLErrorPageRedacted(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = fmt.Fprintf(w, "upstream down; request %s header Authorization=%s", r.URL.Path, r.Header.Get("Authorization"))
	}))
	t.Cleanup(srv.Close)
	provider := e.providerConfigWith(fmt.Sprintf("  psa_syncd_url = %q\n  psa_syncd_api_token = %q\n", srv.URL+"/psa-syncd/", "syncd-read-token-0123456789"))
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: provider + `data "psa_unmapped_usage" "u" {}`,
			ExpectError: regexp.MustCompile(`psa-syncd at\s+` + regexp.QuoteMeta(srv.URL+"/psa-syncd") + `[\s\S]*\(psa_syncd_url\),\s+and\s+psa_syncd_api_token` +
				`[\s\S]*502\s+Bad\s+Gateway:\s+upstream\s+down;\s+request\s+/psa-syncd/api/v1/unmapped\s+header\s+Authorization=Bearer\s+\[REDACTED\]`),
		}},
	})
}

// TestAccUnmappedUsageDataSource_unreachable: a psa-syncd that does not
// answer fails the read with an error naming its URL.
func TestAccUnmappedUsageDataSource_unreachable(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.exportURL, e.exportToken = "http://"+ln.Addr().String(), workflowToken
	_ = ln.Close() // nothing listens there any more
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config:      e.providerConfig() + `data "psa_unmapped_usage" "u" {}`,
			ExpectError: regexp.MustCompile(`Unable to Read Unmapped Usage[\s\S]*psa-syncd at\s+` + regexp.QuoteMeta(e.exportURL)),
		}},
	})
}

// TestAccUnmappedUsageDataSource_errorPageRedacted: a proxy in front of
// psa-syncd that echoes the request's headers in its error page: the plan
// quotes the page without the token.
func TestAccUnmappedUsageDataSource_errorPageRedacted(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = fmt.Fprintf(w, "upstream down; request header Authorization=%s", r.Header.Get("Authorization"))
	}))
	t.Cleanup(srv.Close)
	e.exportURL, e.exportToken = srv.URL, "unmapped-usage-token-0123456789"
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config:      e.providerConfig() + `data "psa_unmapped_usage" "u" {}`,
			ExpectError: regexp.MustCompile(`502\s+Bad\s+Gateway:\s+upstream\s+down;\s+request\s+header\s+Authorization=Bearer\s+\[REDACTED\]`),
		}},
	})
}

// TestAccUnmappedUsageDataSource_notPSASyncd: with a file store the
// provider reaches no psa-syncd, and the read says so.
func TestAccUnmappedUsageDataSource_notPSASyncd(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config:      e.providerConfig() + `data "psa_unmapped_usage" "u" {}`,
			ExpectError: regexp.MustCompile(`psa-syncd Not Configured[\s\S]*not psa-syncd[\s\S]*Set\s+psa_syncd_url[\s\S]*PSA_SYNCD_URL`),
		}},
	})
}

// TestDecodeUnmappedUsage_daemonReport decodes what psa-syncd's GET
// /api/v1/unmapped encodes (usage.UnmappedReport), every field set, so
// that a renamed JSON field on either side fails here.
func TestDecodeUnmappedUsage_daemonReport(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, time.November, 30, 23, 0, 0, 0, time.FixedZone("CET", 3600))
	rep := usage.UnmappedReport{
		Time: at, RunID: 42, Period: source.Period{Year: 2026, Month: time.November}, Source: "passwordboss",
		Unmapped: usage.Unmapped{
			Customers:  []usage.UnmappedCustomer{{CustomerID: "c1", CustomerName: "One", Products: []string{"P1", "P2"}, Quantity: 5}},
			Products:   []usage.UnmappedProduct{{Product: "P9", ProductName: "Nine", Customers: 2, Quantity: 8}},
			Unassigned: []source.Record{{Product: "P1", ProductName: "First", Quantity: 4}, {Product: "P0", Quantity: 0}},
			Unreported: []usage.UnreportedCustomer{{CustomerID: "c7", CustomerName: "Seven", ContractID: "29684183", Quantity: 12, Vendor: usage.VendorGone}},
			// Not unmapped: not shown.
			ZeroCustomers: []usage.UnmappedCustomer{{CustomerID: "trial", Products: []string{"P1"}}},
			SyncOff:       []usage.UnmappedProduct{{Product: "PX", Customers: 1, Quantity: 3}},
		},
	}
	raw, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	m, err := decodeUnmappedUsage(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := unmappedUsageDataSourceModel{
		Source:     types.StringValue("passwordboss"),
		ComputedAt: types.StringValue("2026-11-30T22:00:00Z"), RunID: types.Int64Value(42), Period: types.StringValue("2026-11"),
		HasUnmapped: types.BoolValue(true),
		Customers: []unmappedCustomerModel{{CustomerID: types.StringValue("c1"), CustomerName: types.StringValue("One"),
			Products: []string{"P1", "P2"}, Quantity: types.Int64Value(5)}},
		Products: []unmappedProductModel{{Product: types.StringValue("P9"), ProductName: types.StringValue("Nine"),
			Customers: types.Int64Value(2), Quantity: types.Int64Value(8)}},
		Unassigned: []unassignedUsageModel{{Product: types.StringValue("P1"), ProductName: types.StringValue("First"), Quantity: types.Int64Value(4)}},
		Unreported: []unreportedCustomerModel{{CustomerID: types.StringValue("c7"), CustomerName: types.StringValue("Seven"),
			ContractID: types.StringValue("29684183"), Quantity: types.Int64Value(12), Vendor: types.StringValue("gone")}},
	}
	if got, w := fmt.Sprintf("%+v", m), fmt.Sprintf("%+v", want); got != w {
		t.Errorf("decodeUnmappedUsage =\n%s\nwant\n%s", got, w)
	}

	// Before the first pass: empty lists, no time, no period.
	empty, err := json.Marshal(usage.UnmappedReport{})
	if err != nil {
		t.Fatal(err)
	}
	m, err = decodeUnmappedUsage(empty)
	if err != nil {
		t.Fatal(err)
	}
	if !m.ComputedAt.IsNull() || !m.Period.IsNull() || !m.Source.IsNull() || m.HasUnmapped.ValueBool() || m.Customers == nil || len(m.Customers) != 0 {
		t.Errorf("decodeUnmappedUsage(no pass) = %+v, want null time, period and source, empty lists", m)
	}

	// Not psa-syncd's answer.
	if _, err := decodeUnmappedUsage([]byte(`{"ok": true}`)); err == nil {
		t.Error(`decodeUnmappedUsage({"ok": true}) succeeded, want an error`)
	}
}

// TestUnmappedUsageDataSource_noPassYet: before psa-syncd's first pass the
// read succeeds with empty lists and warns that nothing is known yet, so
// that a condition passing on them is not taken for "nothing unmapped".
func TestUnmappedUsageDataSource_noPassYet(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != export.UnmappedAPIPath {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"unmapped": {"customers": [], "products": [], "unassigned": []}}`))
	}))
	t.Cleanup(srv.Close)
	b, err := export.NewHTTPBackend(srv.URL, "no-pass-token-0123456789", nil)
	if err != nil {
		t.Fatal(err)
	}
	ds := &unmappedUsageDataSource{data: &providerData{store: export.NewClient(b), exportPath: srv.URL}}
	var sr datasource.SchemaResponse
	ds.Schema(t.Context(), datasource.SchemaRequest{}, &sr)
	resp := datasource.ReadResponse{State: tfsdk.State{Schema: sr.Schema, Raw: tftypes.NewValue(sr.Schema.Type().TerraformType(t.Context()), nil)}}
	config := tfsdk.Config{Schema: sr.Schema, Raw: tftypes.NewValue(sr.Schema.Type().TerraformType(t.Context()), nil)}
	ds.Read(t.Context(), datasource.ReadRequest{Config: config}, &resp)
	if resp.Diagnostics.HasError() {
		t.Fatalf("Read: %v", resp.Diagnostics)
	}
	if w := resp.Diagnostics.Warnings(); len(w) != 1 || w[0].Summary() != "psa-syncd Has Not Run a Pass Yet" || !strings.Contains(w[0].Detail(), srv.URL) {
		t.Errorf("Read warnings = %v, want one saying psa-syncd at %s has run no pass", w, srv.URL)
	}
	var got unmappedUsageDataSourceModel
	resp.Diagnostics.Append(resp.State.Get(t.Context(), &got)...)
	if !got.ComputedAt.IsNull() || got.HasUnmapped.ValueBool() || len(got.Customers) != 0 || got.URL.ValueString() != srv.URL {
		t.Errorf("state = %+v, want null computed_at, nothing unmapped, url %s", got, srv.URL)
	}
}

// TestAccUnmappedUsageDataSource_psaSyncdTokenNotLogged: psa_syncd_api_token
// from PSA_SYNCD_API_TOKEN reaches psa-syncd as the bearer token, and
// neither Terraform's trace log nor the state holds it. It is not parallel
// because it sets process environment variables.
func TestAccUnmappedUsageDataSource_psaSyncdTokenNotLogged(t *testing.T) {
	const token = "syncd-Tq93-never-log-me"
	var got atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"time": "2026-11-30T23:00:00Z", "run_id": 3, "period": "2026-11", "source": "sophos",
			"unmapped": {"customers": [], "products": [], "unassigned": []}}`))
	}))
	t.Cleanup(srv.Close)
	logPath := filepath.Join(t.TempDir(), "terraform.log")
	t.Setenv("TF_LOG", "TRACE")
	t.Setenv("TF_ACC_LOG_PATH", logPath)
	t.Setenv(envPSASyncdAPIToken, token)
	e := newTestEnv(t, psa.SystemAutotask)
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: e.providerConfigWith(fmt.Sprintf("  psa_syncd_url = %q\n", srv.URL)) + `
data "psa_unmapped_usage" "u" {
  source = "sophos"
}
`,
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue("data.psa_unmapped_usage.u", tfjsonpath.New("run_id"), knownvalue.Int64Exact(3)),
			},
			Check: func(s *terraform.State) error {
				for addr, rs := range s.RootModule().Resources {
					for k, v := range rs.Primary.Attributes {
						if strings.Contains(v, token) {
							return fmt.Errorf("%s.%s contains the token", addr, k)
						}
					}
				}
				return nil
			},
		}},
	})
	if a, _ := got.Load().(string); a != "Bearer "+token {
		t.Errorf("psa-syncd got Authorization %q, want the token from %s as a bearer token", a, envPSASyncdAPIToken)
	}
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) == 0 || strings.Contains(string(data), token) {
		t.Errorf("Terraform's log (%d bytes) holds psa_syncd_api_token, or is empty", len(data))
	}
}

// TestUnmappedUsageDataSource_olderPSASyncd: a psa-syncd too old to name
// the usage source of its report (or a report kept from before its
// upgrade) cannot be checked against source: the read warns, keeps the
// configured source and fails nothing; with source unset it is null.
func TestUnmappedUsageDataSource_olderPSASyncd(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"time": "2026-11-30T23:00:00Z", "run_id": 9, "period": "2026-11",
			"unmapped": {"customers": [{"customer_id": "c1", "products": ["P1"], "quantity": 2}], "products": [], "unassigned": []}}`))
	}))
	t.Cleanup(srv.Close)
	b, err := export.NewHTTPBackend(srv.URL, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	ds := &unmappedUsageDataSource{data: &providerData{psaSyncdAPI: b}}
	var sr datasource.SchemaResponse
	ds.Schema(t.Context(), datasource.SchemaRequest{}, &sr)
	for _, want := range []string{"sophos", ""} {
		cfg := tfsdk.State{Schema: sr.Schema, Raw: tftypes.NewValue(sr.Schema.Type().TerraformType(t.Context()), nil)}
		if want != "" {
			if diags := cfg.SetAttribute(t.Context(), path.Root("source"), want); diags.HasError() {
				t.Fatal(diags)
			}
		}
		resp := datasource.ReadResponse{State: tfsdk.State{Schema: sr.Schema, Raw: tftypes.NewValue(sr.Schema.Type().TerraformType(t.Context()), nil)}}
		ds.Read(t.Context(), datasource.ReadRequest{Config: tfsdk.Config{Schema: sr.Schema, Raw: cfg.Raw}}, &resp)
		if resp.Diagnostics.HasError() {
			t.Fatalf("Read (source %q): %v", want, resp.Diagnostics)
		}
		warned := len(resp.Diagnostics.Warnings()) == 1 && resp.Diagnostics.Warnings()[0].Summary() == "psa-syncd Does Not Report Its Usage Source"
		if warned != (want != "") {
			t.Errorf("Read (source %q) warnings = %v; want one saying the source cannot be checked only when source is set", want, resp.Diagnostics.Warnings())
		}
		var got unmappedUsageDataSourceModel
		resp.Diagnostics.Append(resp.State.Get(t.Context(), &got)...)
		if got.Source.ValueString() != want || got.Source.IsNull() != (want == "") || len(got.Customers) != 1 {
			t.Errorf("state (source %q) = %+v, want the configured source (null when unset) and the listed customer", want, got)
		}
	}
}

// TestAccUnmappedUsageDataSource_psaSyncdBasicUser: a psa-syncd whose
// listener has basic_auth_users (the API token's bcrypt hash as user
// automation's password) answers every request with 401 without basic
// credentials. psa_syncd_url naming the user (http://automation@host)
// sends the token as that user's basic password, as psa-syncd's -web.url
// commands do, and the read works; without the user in the URL the plan
// fails saying to name it; with the user and no token the plan fails
// naming psa_syncd_api_token.
func TestAccUnmappedUsageDataSource_psaSyncdBasicUser(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	serverDir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte(workflowToken), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webConfig := filepath.Join(serverDir, "web-config.yml")
	if err := os.WriteFile(webConfig, []byte("basic_auth_users:\n  automation: "+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := startWorkflowDaemonWith(t, e, serverDir, e.exportPath, ln, daemon.Options{WebConfigFile: webConfig})
	withUser := "http://automation@" + ln.Addr().String()
	acme := e.addCustomerFixture("Acme")
	service := e.addService("Sophos Intercept X Advanced", 4.5)
	mappings := fmt.Sprintf(`
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
`, service, acme.company, acme.contract)
	pass := func(*terraform.State) error {
		if err := waitForExport(d, "file", acme.contract); err != nil {
			return err
		}
		_, err := d.SyncOnce(t.Context(), usage.PassOptions{Trigger: usage.TriggerManual})
		return err
	}
	provider := func(url, token string) string {
		extra := fmt.Sprintf("  psa_syncd_url = %q\n", url)
		if token != "" {
			extra += fmt.Sprintf("  psa_syncd_api_token = %q\n", token)
		}
		return e.providerConfigWith(extra) + mappings
	}
	const addr = "data.psa_unmapped_usage.u"
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{Config: provider(withUser, workflowToken), Check: pass},
			{
				Config:      provider("http://"+ln.Addr().String(), workflowToken) + `data "psa_unmapped_usage" "u" {}`,
				ExpectError: regexp.MustCompile(`401[\s\S]*basic_auth_users[\s\S]*https://USER@host:port`),
			},
			{
				Config:      provider(withUser, "") + `data "psa_unmapped_usage" "u" {}`,
				ExpectError: regexp.MustCompile(`Missing psa-syncd API Token[\s\S]*names\s+user\s+"automation"`),
			},
			{
				Config: provider(withUser, workflowToken) + `data "psa_unmapped_usage" "u" {}`,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("url"), knownvalue.StringExact(withUser)),
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("source"), knownvalue.StringExact("file")),
				},
			},
		},
	})
}

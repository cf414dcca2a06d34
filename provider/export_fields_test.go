package provider

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/psa-sync/terraform-provider-psa/daemon"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/export/compattest"
)

// olderPSASyncd stands in front of a psa-syncd as an older one would
// answer: it reads the export fields of reader (refusing an export with
// another field with 422, as psa-syncd's strict decoding does), and
// advertises them in export.ReaderFieldsHeader, or nothing when header
// is false (psa-syncd before the header). nil reader passes everything
// through: the current psa-syncd.
type olderPSASyncd struct {
	reader atomic.Pointer[compattest.Reader]
	header atomic.Bool
}

func startOlderPSASyncd(t *testing.T, target string) (*olderPSASyncd, string) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	o := &olderPSASyncd{}
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.ModifyResponse = func(resp *http.Response) error {
		r := o.reader.Load()
		switch {
		case r == nil:
		case o.header.Load():
			var fields []string
			for path, names := range r.Fields {
				for _, name := range names {
					fields = append(fields, strings.TrimPrefix(path+"."+name, "."))
				}
			}
			resp.Header.Set(export.ReaderFieldsHeader, strings.Join(fields, ","))
		default:
			resp.Header.Del(export.ReaderFieldsHeader)
		}
		return nil
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r := o.reader.Load(); r != nil && req.Method == http.MethodPut && req.Body != nil {
			body, err := io.ReadAll(req.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			if unknown, _ := r.Unknown(body); len(unknown) > 0 {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnprocessableEntity)
				fmt.Fprintf(w, `{"error":"invalid export: json: unknown field %q"}`, unknown[0])
				return
			}
			req.Body = io.NopCloser(bytes.NewReader(body))
		}
		proxy.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	return o, srv.URL
}

// TestAccExportStore_olderPSASyncdFailsPlan: with psa-syncd as the export
// store, a plan whose export would hold a field that psa-syncd does not
// read (a renewal, next_contract_id, against a psa-syncd from before
// renewals) fails, naming the field and the resource and saying to
// upgrade psa-syncd, instead of the apply failing with psa-syncd's 422
// after creating the service before it. The same psa-syncd takes the
// configuration without the renewal. A psa-syncd older than the list of
// fields gets a warning for a field the export does not hold yet, and
// none once it does; the current psa-syncd takes the renewal.
func TestAccExportStore_olderPSASyncdFailsPlan(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	acme := e.addCustomerFixture("Acme")
	today := dayOf(time.Now())
	end := today.AddDate(0, 3, 0)
	year1 := e.addDatedContract(acme.company, "Acme Year 1", today.AddDate(-1, 0, 0), end)
	year2 := e.addDatedContract(acme.company, "Acme Year 2", end.AddDate(0, 0, 1), end.AddDate(1, 0, 0))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	startWorkflowDaemon(t, e, t.TempDir(), daemon.ExportSelf, ln)
	older, front := startOlderPSASyncd(t, "http://"+ln.Addr().String())
	e.exportURL, e.exportToken = front, workflowToken
	beforeRenewals := compattest.Readers[1] // tickets, no next_contract_id
	if beforeRenewals.Commit != "53c55ec" {
		t.Fatalf("compattest.Readers[1] is %s (%s), want the generation before renewals", beforeRenewals.Commit, beforeRenewals.What)
	}
	config := func(next string) string {
		extra := ""
		if next != "" {
			extra = fmt.Sprintf("  next_contract_id = %q\n", next)
		}
		return e.providerConfig() + fmt.Sprintf(`
resource "psa_service" "mdr" {
  name       = "Sophos MDR"
  unit_price = 12
}

resource "psa_product_mapping" "mdr" {
  product    = "MDR"
  service_id = psa_service.mdr.id
}

resource "psa_customer_mapping" "acme" {
  customer_id = "acme-1"
  company_id  = %q
  contract_id = %q
%s}
`, acme.company, year1, extra)
	}
	noService := func(*terraform.State) error {
		for _, s := range e.services() {
			if s.Name == "Sophos MDR" {
				return fmt.Errorf("the failed apply created service %s %q before the export refused the renewal", s.ID, s.Name)
			}
		}
		return nil
	}
	var w planWarnings
	const warning = "psa-syncd May Not Read Export Field"
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: w.factories(),
		Steps: []resource.TestStep{
			{
				PreConfig: func() {
					older.reader.Store(&beforeRenewals)
					older.header.Store(true)
				},
				Config: config(year2),
				ExpectError: regexp.MustCompile(`(?s)Export Field Unknown to psa-syncd.*with psa_customer_mapping.acme.*` +
					`customer_mappings.next_contract_id.*customer\s+mapping\s+sophos/acme-1.*Upgrade\s+psa-syncd`),
			},
			{
				PreConfig: func() {
					if err := noService(nil); err != nil {
						t.Error(err)
					}
				},
				Config: config(""),
				Check:  expectPlanWarnings(&w, warning, 0, "", ""),
			},
			{
				PreConfig: func() { older.header.Store(false) },
				Config:    config(year2),
				PlanOnly:  true,
				// The plan step fails on its non-empty plan after the
				// warning was recorded.
				ExpectNonEmptyPlan: true,
			},
			{
				PreConfig: func() {
					if err := expectPlanWarnings(&w, warning, 1, "psa_customer_mapping", "next_contract_id",
						"customer_mappings.next_contract_id", "customer mapping sophos/acme-1", "Upgrade psa-syncd")(nil); err != nil {
						t.Error(err)
					}
					older.reader.Store(nil)
				},
				Config: config(year2),
				Check: resource.ComposeTestCheckFunc(
					expectPlanWarnings(&w, "Export Field Unknown to psa-syncd", 0, "", ""),
					e.checkExport(func(doc *export.Document) error {
						if m, _ := doc.Customer("sophos", "acme-1"); m.NextContractID != year2 {
							return fmt.Errorf("psa-syncd holds customer mapping sophos/acme-1 %+v, want next_contract_id %s", m, year2)
						}
						return nil
					}),
				),
			},
		},
	})
}

// TestAccExportStore_olderPSASyncdTicketsAndOwnersFailPlan: a
// psa_ticket_routing against a psa-syncd from before ticket sync fails the
// plan naming the tickets object, and export_owner_tokens against a
// psa-syncd from before owners fails the plan of a new mapping naming its
// owner field; the current psa-syncd takes both.
func TestAccExportStore_olderPSASyncdTicketsAndOwnersFailPlan(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	service := e.addService("Sophos MDR", 12)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	startWorkflowDaemon(t, e, t.TempDir(), daemon.ExportSelf, ln)
	older, front := startOlderPSASyncd(t, "http://"+ln.Addr().String())
	older.header.Store(true)
	e.exportURL, e.exportToken = front, workflowToken
	beforeTickets, beforeOwners := compattest.Readers[0], compattest.Readers[2]
	if beforeTickets.Commit != "8a23a49" || beforeOwners.Commit != "a429353" {
		t.Fatalf("compattest.Readers[0] and [2] are %s and %s, want the generations before tickets and before owners", beforeTickets.Commit, beforeOwners.Commit)
	}
	routing := ticketRoutingCases()[psa.SystemAutotask].config
	mapping := fmt.Sprintf(`
resource "psa_product_mapping" "mdr" {
  product    = "MDR"
  service_id = %q
}
`, service)
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				PreConfig: func() { older.reader.Store(&beforeTickets) },
				Config:    e.providerConfig() + routing,
				ExpectError: regexp.MustCompile(`(?s)Export Field Unknown to psa-syncd.*with psa_ticket_routing.test.*writes\s+tickets\s+to.*` +
					`the\s+ticket\s+routing.*Upgrade\s+psa-syncd`),
			},
			{
				PreConfig: func() { older.reader.Store(&beforeOwners) },
				Config:    e.providerConfigWith("export_owner_tokens = true\n") + mapping,
				ExpectError: regexp.MustCompile(`(?s)Export Field Unknown to psa-syncd.*with psa_product_mapping.mdr.*` +
					`product_mappings.owner.*product\s+mapping\s+sophos/MDR.*Upgrade\s+psa-syncd`),
			},
			{
				PreConfig: func() { older.reader.Store(nil) },
				Config:    e.providerConfigWith("export_owner_tokens = true\n") + mapping + routing,
				Check: e.checkExport(func(doc *export.Document) error {
					if m, _ := doc.Product("sophos", "MDR"); m.Owner == "" || doc.Tickets == nil {
						return fmt.Errorf("psa-syncd holds product mapping %+v and tickets %+v, want an owner token and the routing", m, doc.Tickets)
					}
					return nil
				}),
			},
		},
	})
}

// TestAccExportStore_publishedReaderFieldsFailPlan: with a file store,
// psa-syncd lists the export fields it reads beside the export
// (export.ReadersSuffix), an entry per version with when it was last
// confirmed. A plan that would write a field a recent entry lacks (a
// renewal's next_contract_id, for a psa-syncd from before renewals still
// running beside a newer one, as in a rolling upgrade) fails, naming the
// field, the version and the list; before, it applied, and psa-syncd
// refused the export at its reload and went on with the old one. A plan
// without the field applies. The same entry unconfirmed for five days (a
// psa-syncd since stopped or upgraded) only warns, naming its age, and the
// renewal applies. A list that is garbled warns and checks nothing. (A
// store without the list checks nothing, as every other file store test
// shows; TestCheckPublishedFields has the other cases.)
func TestAccExportStore_publishedReaderFieldsFailPlan(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	acme := e.addCustomerFixture("Acme")
	today := dayOf(time.Now())
	end := today.AddDate(0, 3, 0)
	year1 := e.addDatedContract(acme.company, "Acme Year 1", today.AddDate(-1, 0, 0), end)
	year2 := e.addDatedContract(acme.company, "Acme Year 2", end.AddDate(0, 0, 1), end.AddDate(1, 0, 0))
	readers := e.exportPath + export.ReadersSuffix
	publish := func(data string) func() {
		return func() {
			if err := os.WriteFile(readers, []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	var beforeRenewals []string
	for _, f := range export.ReaderFields() {
		if f != "customer_mappings.next_contract_id" {
			beforeRenewals = append(beforeRenewals, f)
		}
	}
	// list holds the current build's entry, confirmed an hour ago, and one
	// from before renewals confirmed ago.
	list := func(ago time.Duration) func() {
		return func() {
			now := time.Now()
			data, err := json.Marshal(map[string]any{"readers": []export.Reader{
				{Version: "2.0.0", Fields: export.ReaderFields(), Confirmed: now.Add(-time.Hour)},
				{Version: "1.8.0", Fields: beforeRenewals, Confirmed: now.Add(-ago)},
			}})
			if err != nil {
				t.Fatal(err)
			}
			publish(string(data))()
		}
	}
	config := func(next string) string {
		extra := ""
		if next != "" {
			extra = fmt.Sprintf("  next_contract_id = %q\n", next)
		}
		return e.providerConfig() + fmt.Sprintf(`
resource "psa_customer_mapping" "acme" {
  customer_id = "acme-1"
  company_id  = %q
  contract_id = %q
%s}
`, acme.company, year1, extra)
	}
	var w planWarnings
	const warning, stale = "Unable to Read psa-syncd's Export Fields", "Export Field Unknown to a psa-syncd Not Seen Lately"
	resource.UnitTest(t, resource.TestCase{
		ProtoV6ProviderFactories: w.factories(),
		Steps: []resource.TestStep{
			{
				PreConfig: list(2 * time.Hour),
				Config:    config(year2),
				ExpectError: regexp.MustCompile(`(?s)Error running pre-apply plan.*Export Field Unknown to psa-syncd.*with psa_customer_mapping.acme.*` +
					`customer_mappings.next_contract_id.*customer\s+mapping\s+sophos/acme-1.*psa-syncd\s+1.8.0,\s+which\s+confirmed\s+it\s+2\s+hours\s+ago.*` +
					`psa-mappings.json.readers.*keeps\s+the\s+one\s+it\s+has.*Upgrade\s+psa-syncd`),
			},
			{
				Config: config(""),
				Check:  resource.ComposeTestCheckFunc(expectPlanWarnings(&w, warning, 0, "", ""), expectPlanWarnings(&w, stale, 0, "", "")),
			},
			{
				PreConfig: list(5*24*time.Hour + time.Minute),
				Config:    config(year2),
				Check: resource.ComposeTestCheckFunc(
					expectPlanWarnings(&w, stale, 1, "psa_customer_mapping", "next_contract_id", "customer_mappings.next_contract_id",
						"psa-syncd 1.8.0, which confirmed it 5 days ago", "psa-mappings.json.readers"),
					resource.TestCheckResourceAttr("psa_customer_mapping.acme", "next_contract_id", year2),
				),
			},
			{
				Config: config(""),
			},
			{
				PreConfig: func() { w.take(""); publish("<html>403 Forbidden</html>")() },
				Config:    config(year2),
				Check: resource.ComposeTestCheckFunc(
					expectPlanWarnings(&w, warning, 1, "psa_customer_mapping", "", "psa-mappings.json.readers", "does not check them"),
					resource.TestCheckResourceAttr("psa_customer_mapping.acme", "next_contract_id", year2),
				),
			},
		},
	})
}

package impact_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/impact"
	"github.com/psa-sync/terraform-provider-psa/daemon/impact/impacttest"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// fuzzPlan is a plan with one resource of each kind the report reads, a
// psa_service instance that a mapping refers to by each.value of a
// for_each given by a variable, a sensitive customer name and a module.
const fuzzPlan = `{"format_version":"1.2","terraform_version":"1.11.4",
"variables":{"services":{"value":{"mdr":"MDR"}}},
"resource_changes":[
 {"address":"psa_service.s[\"MDR\"]","mode":"managed","type":"psa_service","name":"s","index":"MDR","change":{"actions":["create"],"before":null,
  "after":{"name":"Sophos MDR","unit_price":12.5,"billing_period":"monthly"},"after_unknown":{"id":true}}},
 {"address":"psa_service.old","mode":"managed","type":"psa_service","name":"old","change":{"actions":["update"],
  "before":{"id":"100","name":"Backup","unit_price":4,"billing_period":"yearly"},"after":{"id":"100","name":"Backup","unit_price":5,"billing_period":"yearly"},"after_unknown":{}}},
 {"address":"psa_product_mapping.m[\"mdr\"]","mode":"managed","type":"psa_product_mapping","name":"m","index":"mdr","change":{"actions":["delete","create"],
  "before":{"source":"sophos","product":"OLD","service_id":"100","service_name":"Backup","sync_enabled":true},
  "after":{"source":"sophos","product":"MDR","sync_enabled":true},"after_unknown":{"service_id":true,"service_name":true}}},
 {"address":"psa_customer_mapping.c","mode":"managed","type":"psa_customer_mapping","name":"c","change":{"actions":["update"],
  "before":{"source":"sophos","customer_id":"718b6047","customer_name":"Acme","company_id":"5","contract_id":"34","usage_sync":true,"ticket_sync":false},
  "after":{"source":"sophos","customer_id":"718b6047","customer_name":"Acme","company_id":"5","usage_sync":true},
  "after_unknown":{"contract_id":true,"ticket_sync":true},"before_sensitive":{"customer_name":true},"after_sensitive":{"customer_name":true}}},
 {"address":"module.m.psa_product_mapping.x[0]","module_address":"module.m","mode":"managed","type":"psa_product_mapping","name":"x","index":0,"change":{"actions":["create"],"before":null,
  "after":{"source":"file","product":"P","sync_enabled":true},"after_unknown":{"service_id":true}}},
 {"address":"psa_integration.i","mode":"managed","type":"psa_integration","name":"i","change":{"actions":["create"],"before":null,
  "after":{"enabled":true,"schedule":"daily 06:00","timezone":"UTC"},"after_unknown":{}}}],
"configuration":{"root_module":{
 "resources":[
  {"address":"psa_service.s","mode":"managed","type":"psa_service","name":"s","for_each_expression":{"references":["var.services"]}},
  {"address":"psa_product_mapping.m","mode":"managed","type":"psa_product_mapping","name":"m","for_each_expression":{"references":["var.services"]},
   "expressions":{"service_id":{"references":["psa_service.s[each.value].id","psa_service.s","each.value"]},"service_name":{"references":["psa_service.s.name"]}}}],
 "module_calls":{"m":{"source":"./m","module":{"resources":[{"address":"psa_product_mapping.x","mode":"managed","type":"psa_product_mapping","name":"x",
  "count_expression":{"constant_value":1},"expressions":{"service_id":{"references":["psa_service.y[count.index].id","psa_service.y","count.index"]}}}]}}}}}}`

// FuzzReadTerraformPlan feeds arbitrary JSON to `psa-syncd plan
// -terraform-plan FILE`: reading the plan, applying it to an export and
// computing and writing the report (without a PSA or usage, which
// TestBillingImpact_* cover). A plan may be refused with an error, but
// nothing may panic or hang, and a report is written in every format.
func FuzzReadTerraformPlan(f *testing.F) {
	f.Add([]byte(fuzzPlan))
	for _, name := range []string{"errored_plan_1.5.7.json", "errored_plan_1.11.4.json"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"format_version":"1.2","resource_changes":[]}`))
	f.Add([]byte(`{"format_version":"0.1","planned_values":{}}`))
	current := export.New(psa.SystemAutotask, "")
	current.PutProduct(export.ProductMapping{Source: "sophos", Product: "OLD", ServiceID: "100", ServiceName: "Backup", SyncEnabled: true})
	current.PutCustomer(export.CustomerMapping{Source: "sophos", CustomerID: "718b6047", CustomerName: "Acme", CompanyID: "5", ContractID: "34", UsageSync: true})
	f.Fuzz(func(t *testing.T, data []byte) {
		tp, err := impact.ReadTerraformPlan(data)
		if err != nil {
			if tp != nil {
				t.Errorf("ReadTerraformPlan returned a plan with the error %v", err)
			}
			return
		}
		rep, err := impact.Compute(t.Context(), impact.Options{
			SourceName: impacttest.SourceName, Policies: usage.DefaultPolicies, Now: func() time.Time { return impacttest.Now },
			NoBackend: "no PSA credentials", NoSource: "no usage-source credentials",
		}, current, tp)
		if err != nil {
			return
		}
		for _, format := range impact.Formats {
			var buf bytes.Buffer
			if err := impact.Write(&buf, rep, format); err != nil {
				t.Fatalf("Write(%s): %v", format, err)
			}
			if format == impact.FormatJSON && !json.Valid(buf.Bytes()) {
				t.Fatalf("the JSON report is not JSON:\n%s", buf.String())
			}
		}
	})
}

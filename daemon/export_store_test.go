package daemon

import (
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

func TestCheckExport_nonCanonicalIDs(t *testing.T) {
	t.Parallel()
	cfg := &Config{PSA: PSAConfig{System: psa.SystemAutotask}}
	const form = `: Autotask ids are whole numbers from 0 up, written in decimal digits alone, such as "29684183"`
	tests := []struct {
		name string
		edit func(d *export.Document)
		want string
	}{
		{"contract_id with a leading zero", func(d *export.Document) { d.CustomerMappings[0].ContractID = "029684183" },
			`export: customer_mappings[0] (file/cust-a): contract_id "029684183" is not a valid Autotask id` + form},
		{"company_id with a space", func(d *export.Document) { d.CustomerMappings[0].CompanyID = " 174" },
			`export: customer_mappings[0] (file/cust-a): company_id " 174" is not a valid Autotask id` + form},
		{"service_id with a sign", func(d *export.Document) { d.ProductMappings[0].ServiceID = "+30000012" },
			`export: product_mappings[0] (file/CIXA-MSP): service_id "+30000012" is not a valid Autotask id` + form},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			doc := export.New(psa.SystemAutotask, "")
			doc.PutProduct(export.ProductMapping{Source: "file", Product: "CIXA-MSP", ServiceID: "30000012", SyncEnabled: true})
			doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: "cust-a", CompanyID: "174", ContractID: "29684183", UsageSync: true})
			if _, err := CheckExport(cfg, dtMust(doc.Encode()), ""); err != nil {
				t.Fatalf("CheckExport of the canonical export: %v", err)
			}
			tt.edit(doc)
			_, err := CheckExport(cfg, dtMust(doc.Encode()), "")
			if err == nil || err.Error() != tt.want {
				t.Errorf("CheckExport error = %v\nwant %s", err, tt.want)
			}
		})
	}
}

// TestDaemon_Reload_refusesNonCanonicalIDs checks that an export whose
// contract or service id is spelled with a leading zero or a space (which
// the Autotask backend reads as the same id, but whose lines it reports
// under the canonical id) is refused, the last good export kept, and no
// pass posts the line's quantity again: before, every pass added it once
// more (11 → 22 → 33).
func TestDaemon_Reload_refusesNonCanonicalIDs(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		edit  func(e *dtEnv, d *export.Document)
		field string
	}{
		{"contract_id", func(e *dtEnv, d *export.Document) {
			cm, _ := d.Customer("file", "cust-acme")
			cm.ContractID = "0" + dtID(e.contracts[0])
			d.PutCustomer(cm)
		}, `customer_mappings[0] (file/cust-acme): contract_id "0`},
		{"service_id", func(e *dtEnv, d *export.Document) {
			pm, _ := d.Product("file", "CIXA-MSP")
			pm.ServiceID = " " + dtID(e.services[0])
			d.PutProduct(pm)
		}, `product_mappings[0] (file/CIXA-MSP): service_id " `},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := dtSetup(t, dtOptions{})
			if err := e.d.Reload(); err != nil {
				t.Fatal(err)
			}
			if _, err := e.d.SyncOnce(t.Context(), usage.PassOptions{}); err != nil {
				t.Fatal(err)
			}
			if got := e.units(0, 0); got != 11 {
				t.Fatalf("units after the first pass = %d, want 11", got)
			}

			bad := e.doc.Clone()
			bad.Revision = 2
			tt.edit(e, bad)
			e.writeExport(t, bad)
			err := e.d.Reload()
			if err == nil || !strings.Contains(err.Error(), tt.field) || !strings.Contains(err.Error(), "is not a valid Autotask id") {
				t.Errorf("Reload of the export returned %v, want an error naming %s", err, tt.field)
			}
			if rev := e.d.Export().Revision; rev != 1 {
				t.Errorf("export revision in use = %d, want the last good one (1)", rev)
			}
			for pass := range 2 {
				if _, err := e.d.SyncOnce(t.Context(), usage.PassOptions{}); err != nil {
					t.Fatal(err)
				}
				if got := e.units(0, 0); got != 11 {
					t.Errorf("units after pass %d with the bad export = %d, want 11", pass+2, got)
				}
			}
		})
	}
}

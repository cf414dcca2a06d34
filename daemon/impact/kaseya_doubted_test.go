package impact_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/impact"
	"github.com/psa-sync/terraform-provider-psa/daemon/impact/impacttest"
	"github.com/psa-sync/terraform-provider-psa/daemon/state/pgtest"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// kaseyaMDR is a Kaseya BMS world whose export maps Acme to its managed
// services contract and MDR (3 units of usage) to service s1; s2 is
// another MDR service.
type kaseyaMDR struct {
	w                *impacttest.World
	doc              *export.Document
	contract, s1, s2 int
	svc1, svc2       string
}

func newKaseyaMDR(t *testing.T, opts ...impacttest.Option) *kaseyaMDR {
	w := impacttest.New(t, psa.SystemKaseyaBMS, opts...)
	k := w.Sim.KaseyaBMS()
	x := &kaseyaMDR{w: w, doc: export.New(psa.SystemKaseyaBMS, "")}
	var account int
	for _, a := range k.Accounts() {
		if a.Name == "Acme Corporation" {
			account = a.ID
		}
	}
	for _, c := range k.Contracts() {
		if c.Name == "Acme Managed Services" {
			x.contract = c.ID
		}
	}
	x.s1, x.s2 = k.AddService("Sophos MDR", 9), k.AddService("Sophos MDR Complete", 11)
	x.svc1, x.svc2 = strconv.Itoa(x.s1), strconv.Itoa(x.s2)
	x.doc.PutCustomer(export.CustomerMapping{Source: impacttest.SourceName, CustomerID: "acme-tenant", CustomerName: "Acme",
		CompanyID: strconv.Itoa(account), ContractID: strconv.Itoa(x.contract), UsageSync: true})
	x.doc.PutProduct(x.mdr(x.svc1))
	w.SetUsage(t, "customer_id,customer_name,product,quantity\nacme-tenant,Acme,MDR,3\n")
	return x
}

func (x *kaseyaMDR) mdr(svc string) export.ProductMapping {
	return export.ProductMapping{Source: impacttest.SourceName, Product: "MDR", ServiceID: svc, ServiceName: "Sophos MDR " + svc, SyncEnabled: true}
}

func (x *kaseyaMDR) sync(t *testing.T, o usage.PassOptions, updated int) {
	t.Helper()
	res, err := x.w.Engine().Sync(t.Context(), x.doc, o)
	if err != nil || res.Run.Updated != updated {
		t.Fatalf("pass = %+v, %v; want %d updated", res.Run, err, updated)
	}
}

// setByHand sets the line of service svc on Acme's contract to 0, as an
// operator does in Kaseya BMS.
func (x *kaseyaMDR) setByHand(svc int) {
	x.w.Sim.KaseyaBMS().AddLine(x.contract, svc, 0, time.Date(2026, time.November, 1, 0, 0, 0, 0, time.UTC))
}

// mdrPlan is a Terraform plan that makes MDR's product mapping name service
// after: an update from before, or a create when before is "".
func mdrPlan(before, after string) []byte {
	mapping := func(svc string) string {
		return `{"source": "sophos", "product": "MDR", "service_id": "` + svc + `", "service_name": "Sophos MDR ` + svc + `", "sync_enabled": true}`
	}
	actions, from := `["create"]`, "null"
	if before != "" {
		actions, from = `["update"]`, mapping(before)
	}
	return []byte(`{"format_version": "1.2", "terraform_version": "1.11.4", "resource_changes": [{
		"address": "psa_product_mapping.mdr", "mode": "managed", "type": "psa_product_mapping", "name": "mdr",
		"provider_name": "registry.terraform.io/psa-sync/psa",
		"change": {"actions": ` + actions + `, "before": ` + from + `, "after": ` + mapping(after) + `, "after_unknown": {}}}]}`)
}

// lineOf returns the report's line of service svc.
func lineOf(t *testing.T, rep *impact.Report, svc string) impact.Line {
	t.Helper()
	for _, l := range rep.Lines {
		if l.ServiceID == svc {
			return l
		}
	}
	t.Fatalf("the report has no line of service %s: %+v", svc, rep.Lines)
	return impact.Line{}
}

// TestBillingImpact_kaseyaBMSPointedBack: on Kaseya BMS, with psa-syncd's
// state database, a plan that points MDR back to the service it left,
// whose line the approval of the new service's line said was set to 0,
// shows that line at 0 now and held as previous_service, as the pass after
// apply holds it, not unchanged at the 3 units psa-syncd's ledger says;
// with the state in SQLite and in PostgreSQL.
func TestBillingImpact_kaseyaBMSPointedBack(t *testing.T) {
	t.Parallel()
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			t.Parallel()
			var opts []impacttest.Option
			if db == "postgres" {
				opts = append(opts, impacttest.WithPostgres(pgtest.NewDatabase(t)))
			}
			x := newKaseyaMDR(t, opts...)
			x.sync(t, usage.PassOptions{}, 1)
			x.doc.PutProduct(x.mdr(x.svc2))
			x.setByHand(x.s1)
			x.sync(t, usage.PassOptions{Approve: true, Customer: "acme-tenant", ApproveService: x.svc2}, 1)

			rep, _ := report(t, impact.Options{Backend: x.w.Backend, Source: x.w.Source, State: x.w.State}, mdrPlan(x.svc2, x.svc1), x.doc, impact.FormatMarkdown)
			if l := lineOf(t, rep, x.svc1); l.ProposedHeld == nil || l.ProposedHeld.Hold != usage.HoldPreviousService || l.ProposedHeld.Units != 3 ||
				l.Now == nil || *l.Now != 0 || l.Proposed == nil || *l.Proposed != 0 {
				t.Errorf("MDR's old line in the report = %+v (held %+v), want now 0 (set by hand, as the approval said) and held as %s at 3 units, keeping 0", l, l.ProposedHeld, usage.HoldPreviousService)
			}
		})
	}
}

// TestBillingImpact_kaseyaBMSClearedMappedAgain: on Kaseya BMS, a plan
// that maps MDR again after its orphaned line was cleared shows what the
// pass after apply does, the line posted at 3, and what it holds now as
// unknown (the clear says it may no longer hold the 3 units psa-syncd's
// ledger says): not an unchanged line.
func TestBillingImpact_kaseyaBMSClearedMappedAgain(t *testing.T) {
	t.Parallel()
	x := newKaseyaMDR(t)
	x.sync(t, usage.PassOptions{}, 1)
	x.doc.DeleteProduct(impacttest.SourceName, "MDR")
	x.sync(t, usage.PassOptions{}, 0)
	x.setByHand(x.s1)
	if _, err := x.w.Engine().ClearOrphans(strconv.Itoa(x.contract), x.svc1, "set to 0", false); err != nil {
		t.Fatal(err)
	}

	rep, _ := report(t, impact.Options{Backend: x.w.Backend, Source: x.w.Source, State: x.w.State}, mdrPlan("", x.svc1), x.doc, impact.FormatMarkdown)
	if l := lineOf(t, rep, x.svc1); l.ProposedHeld != nil || l.Now != nil || l.Proposed == nil || *l.Proposed != 3 || l.MonthlyDelta != nil {
		t.Errorf("MDR's line in the report = %+v, want now unknown, proposed 3, delta unknown", l)
	}
}

// TestBillingImpact_kaseyaBMSListedMappedAgain: on Kaseya BMS, a plan
// that maps MDR again after a pass listed its line as orphaned, set to 0
// by hand and never cleared, shows what the pass after apply does, the
// line posted at 3, and what it holds now as unknown (a person may have
// changed it while it was listed): not an unchanged line at the 3 units of
// psa-syncd's ledger, while it bills 0.
func TestBillingImpact_kaseyaBMSListedMappedAgain(t *testing.T) {
	t.Parallel()
	x := newKaseyaMDR(t)
	x.sync(t, usage.PassOptions{}, 1)
	x.doc.DeleteProduct(impacttest.SourceName, "MDR")
	x.sync(t, usage.PassOptions{}, 0)
	x.setByHand(x.s1)

	rep, _ := report(t, impact.Options{Backend: x.w.Backend, Source: x.w.Source, State: x.w.State}, mdrPlan("", x.svc1), x.doc, impact.FormatMarkdown)
	if l := lineOf(t, rep, x.svc1); l.ProposedHeld != nil || l.Now != nil || l.Proposed == nil || *l.Proposed != 3 || l.MonthlyDelta != nil {
		t.Errorf("MDR's line in the report = %+v, want now unknown, proposed 3, delta unknown", l)
	}
}

// TestBillingImpact_kaseyaBMSClearedZeroedMappedAgain: cleared as zeroed
// (psa-syncd orphans -clear -zeroed), the line mapped again shows now 0,
// as the operator said, and its delta: not unknown.
func TestBillingImpact_kaseyaBMSClearedZeroedMappedAgain(t *testing.T) {
	t.Parallel()
	x := newKaseyaMDR(t)
	x.sync(t, usage.PassOptions{}, 1)
	x.doc.DeleteProduct(impacttest.SourceName, "MDR")
	x.sync(t, usage.PassOptions{}, 0)
	x.setByHand(x.s1)
	if _, err := x.w.Engine().ClearOrphans(strconv.Itoa(x.contract), x.svc1, "set to 0", true); err != nil {
		t.Fatal(err)
	}

	rep, _ := report(t, impact.Options{Backend: x.w.Backend, Source: x.w.Source, State: x.w.State}, mdrPlan("", x.svc1), x.doc, impact.FormatMarkdown)
	if l := lineOf(t, rep, x.svc1); l.ProposedHeld != nil || l.Now == nil || *l.Now != 0 || l.Proposed == nil || *l.Proposed != 3 || l.MonthlyDelta == nil {
		t.Errorf("MDR's line in the report = %+v, want now 0, proposed 3, with its delta", l)
	}
}

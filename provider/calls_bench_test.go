package provider

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tftypes"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// BenchmarkProviderCalls measures, one sub-benchmark per server, resource
// type and call, the four calls a refresh plan makes for each unchanged
// resource (refreshCalls), for a psa_service, a psa_product_mapping and a
// psa_customer_mapping in the export, with the provider configured against
// the Autotask simulator as `make bench-provider` configures it.
// "provider" is the server main.go serves (NewProtocol6, with its fast
// paths), "framework" terraform-plugin-framework's own. cpu-ns/op (the
// test process's processor time per call) and allocs/op are the
// provider's cost per call and per resource, without gRPC and without
// Terraform; allocs/op does not depend on the machine's load, and
// cpu-ns/op far less than ns/op (wall time) does:
//
//	make bench-calls
//	go test -run '^$' -bench 'BenchmarkProviderCalls/provider/' -benchmem -cpuprofile cpu.out ./provider/
//
// The reads answer from the command's read cache after the first call, as
// 199 of a plan's 200 service reads do.
func BenchmarkProviderCalls(b *testing.B) {
	e := newRefreshEnv(b)
	for _, s := range []struct {
		name   string
		server tfprotov6.ProviderServer
	}{
		{"provider", NewProtocol6(New("test")())()},
		{"framework", providerserver.NewProtocol6(New("test")())()},
	} {
		for _, c := range e.calls(b, s.server) {
			b.Run(s.name+"/"+c.typeName+"/"+c.name, func(b *testing.B) {
				b.ReportAllocs()
				start := processCPU(b)
				for b.Loop() {
					c.run(b)
				}
				b.ReportMetric(float64(processCPU(b)-start)/float64(b.N), "cpu-ns/op")
			})
		}
	}
}

// refreshEnv is a simulator and an export with one resource of each type
// that refreshCalls refreshes.
type refreshEnv struct {
	*testEnv
	service, company, contract string
}

func newRefreshEnv(tb testing.TB) refreshEnv {
	tb.Helper()
	e := refreshEnv{testEnv: &testEnv{system: psa.SystemAutotask, sim: psatest.NewServer(psatest.WithSystem(psa.SystemAutotask)),
		exportPath: filepath.Join(tb.TempDir(), "psa-mappings.json")}}
	tb.Cleanup(e.sim.Close)
	e.service = e.addService("Bench Service", 5)
	e.company = e.addCompany("Bench Company")
	e.contract = e.addContract(e.company, "Bench Company Managed Services", contractRecurring)
	if _, err := export.NewStore(e.exportPath).Update(e.system, "", func(doc *export.Document) error {
		doc.PutProduct(export.ProductMapping{Source: "sophos", Product: "P1", ServiceID: e.service, ServiceName: "Bench Service", SyncEnabled: true})
		doc.PutCustomer(export.CustomerMapping{Source: "sophos", CustomerID: "C1", CustomerName: "Bench Customer",
			CompanyID: e.company, ContractID: e.contract, UsageSync: true})
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	return e
}

// refreshCall is one call of a refresh plan for one resource.
type refreshCall struct {
	typeName, name string
	// call makes the call and returns its diagnostics and the state it
	// answers with, if any.
	call func(ctx context.Context) ([]*tfprotov6.Diagnostic, *tfprotov6.DynamicValue, error)
}

// run makes the call and fails tb on an error or a diagnostic.
func (c refreshCall) run(tb testing.TB) {
	if diags, _, err := c.call(tb.Context()); err != nil || len(diags) > 0 {
		tb.Fatalf("%s %s: %v %s", c.typeName, c.name, err, diagnosticsText(diags))
	}
}

// calls configures s against e and returns the calls Terraform makes, in
// a refresh plan that changes nothing, for each of e's resources
// (UpgradeResourceState, ValidateResourceConfig, ReadResource,
// PlanResourceChange, as Terraform sends them), each made once and checked
// to leave the resource as it is.
func (e refreshEnv) calls(tb testing.TB, s tfprotov6.ProviderServer) []refreshCall {
	tb.Helper()
	types := configureForTest(tb, e.testEnv, s)
	resources := []struct {
		typeName      string
		state, config tftypes.Value
	}{
		{"psa_service", readServiceState(tb, s, types["psa_service"], e.service),
			objectValue(types["psa_service"], map[string]tftypes.Value{
				"name": str("Bench Service"), "unit_price": tftypes.NewValue(tftypes.Number, 5),
			})},
		{"psa_product_mapping", objectValue(types["psa_product_mapping"], map[string]tftypes.Value{
			"id": str("sophos/P1"), "source": str("sophos"), "product": str("P1"), "service_id": str(e.service),
			"service_name": str("Bench Service"), "sync_enabled": tftypes.NewValue(tftypes.Bool, true),
		}), objectValue(types["psa_product_mapping"], map[string]tftypes.Value{"product": str("P1"), "service_id": str(e.service)})},
		{"psa_customer_mapping", objectValue(types["psa_customer_mapping"], map[string]tftypes.Value{
			"id": str("sophos/C1"), "source": str("sophos"), "customer_id": str("C1"), "customer_name": str("Bench Customer"),
			"company_id": str(e.company), "contract_id": str(e.contract),
			"usage_sync": tftypes.NewValue(tftypes.Bool, true), "ticket_sync": tftypes.NewValue(tftypes.Bool, false),
		}), objectValue(types["psa_customer_mapping"], map[string]tftypes.Value{
			"customer_id": str("C1"), "customer_name": str("Bench Customer"), "company_id": str(e.company), "contract_id": str(e.contract),
		})},
	}
	var calls []refreshCall
	for _, r := range resources {
		typ := types[r.typeName]
		state, config := dynamic(tb, typ, r.state), dynamic(tb, typ, r.config)
		rawJSON, err := json.Marshal(tftypesJSON(tb, r.state))
		if err != nil {
			tb.Fatal(err)
		}
		for _, c := range []refreshCall{
			{r.typeName, "UpgradeResourceState", func(ctx context.Context) ([]*tfprotov6.Diagnostic, *tfprotov6.DynamicValue, error) {
				resp, err := s.UpgradeResourceState(ctx, &tfprotov6.UpgradeResourceStateRequest{TypeName: r.typeName, RawState: &tfprotov6.RawState{JSON: rawJSON}})
				return resp.Diagnostics, resp.UpgradedState, err
			}},
			{r.typeName, "ValidateResourceConfig", func(ctx context.Context) ([]*tfprotov6.Diagnostic, *tfprotov6.DynamicValue, error) {
				resp, err := s.ValidateResourceConfig(ctx, &tfprotov6.ValidateResourceConfigRequest{TypeName: r.typeName, Config: config})
				return resp.Diagnostics, state, err
			}},
			{r.typeName, "ReadResource", func(ctx context.Context) ([]*tfprotov6.Diagnostic, *tfprotov6.DynamicValue, error) {
				resp, err := s.ReadResource(ctx, &tfprotov6.ReadResourceRequest{TypeName: r.typeName, CurrentState: state})
				return resp.Diagnostics, resp.NewState, err
			}},
			{r.typeName, "PlanResourceChange", func(ctx context.Context) ([]*tfprotov6.Diagnostic, *tfprotov6.DynamicValue, error) {
				resp, err := s.PlanResourceChange(ctx, &tfprotov6.PlanResourceChangeRequest{TypeName: r.typeName, Config: config, PriorState: state, ProposedNewState: state})
				return resp.Diagnostics, resp.PlannedState, err
			}},
		} {
			diags, got, err := c.call(tb.Context())
			if err != nil || len(diags) > 0 {
				tb.Fatalf("%s %s: %v %s", c.typeName, c.name, err, diagnosticsText(diags))
			}
			if v, err := got.Unmarshal(typ); err != nil || !v.Equal(r.state) {
				tb.Fatalf("%s %s: state %v (%v), want it unchanged: %v", c.typeName, c.name, v, err, r.state)
			}
			calls = append(calls, c)
		}
	}
	return calls
}
